"""Albumentations pipelines built from config dicts.

A pipeline is a list of dicts whose ``type`` is an albumentations class name (``RandomCrop``,
``HorizontalFlip``, ``OneOf`` with nested ``transforms`` ...) or a transform registered in
:data:`uda.registry.TRANSFORMS`. Masks travel as albumentations' ``mask``; padding fills masks
with the ignore index so padded pixels never count as a class.
"""
from __future__ import annotations

import copy
import difflib
from typing import Any, Optional, Sequence

import albumentations as A

from uda.registry import TRANSFORMS


def _albu_names() -> list[str]:
    return sorted(n for n in dir(A) if not n.startswith('_') and isinstance(getattr(A, n), type))


def build_transform(cfg: dict, where: str = 'pipeline') -> A.BasicTransform:
    """Build one albumentations transform from ``dict(type=..., **kwargs)``."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'{where}: each transform must be a dict with a `type` key, got {cfg!r}.')
    cfg = copy.deepcopy(dict(cfg))
    name = cfg.pop('type')
    for key in ('transforms',):  # nested compositions (OneOf, SomeOf, Sequential)
        if key in cfg:
            cfg[key] = [build_transform(c, f'{where}.{name}') for c in cfg[key]]
    if isinstance(name, str) and hasattr(A, name):
        cls = getattr(A, name)
    elif isinstance(name, str) and name in TRANSFORMS.module_dict:
        cls = TRANSFORMS.module_dict[name]
    else:
        close = difflib.get_close_matches(str(name), _albu_names() + list(TRANSFORMS.module_dict))
        hint = f' Did you mean {close}?' if close else ''
        raise KeyError(f"{where}: unknown transform type '{name}'.{hint} Use an albumentations "
                       'class name (https://albumentations.ai/docs/api-reference/) or a '
                       'transform registered in uda.registry.TRANSFORMS.')
    try:
        return cls(**cfg)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{where}: cannot build {name}({cfg}): {err}. Check the argument names '
                         f'against the {name} documentation.') from err


def build_pipeline(cfgs: Optional[Sequence[dict]], seed: Optional[int] = None) -> A.Compose:
    """Build an ``A.Compose`` from a list of transform dicts (empty list = identity)."""
    transforms = [build_transform(c, f'pipeline[{i}]') for i, c in enumerate(cfgs or [])]
    return A.Compose(transforms, seed=seed)


def apply_pipeline(pipeline: A.Compose, image: Any, mask: Any) -> tuple[Any, Any]:
    """Run ``pipeline`` on an image and an optional mask; returns both."""
    if mask is None:
        return pipeline(image=image)['image'], None
    out = pipeline(image=image, mask=mask)
    return out['image'], out['mask']
