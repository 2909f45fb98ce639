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
import numpy as np
import torch

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
        raise KeyError(
            f"{where}: unknown transform type '{name}'.{hint} Use an albumentations "
            'class name (https://albumentations.ai/docs/api-reference/) or a '
            'transform registered in uda.registry.TRANSFORMS.'
        )
    kwargs = dict(cfg)
    if isinstance(cls, type) and issubclass(cls, A.BasicTransform):
        # Albumentations only warns about an unknown argument (`RandomCrop(widht=...)`) and
        # drops it; strict=True makes that an error here, before training.
        kwargs.setdefault('strict', True)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f'{where}: cannot build {name}({cfg}): {err}. Check the argument names '
            f'against the {name} documentation.'
        ) from err


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


def apply_to_sample(pipeline: A.Compose, sample: dict[str, Any]) -> dict[str, Any]:
    """Run ``pipeline`` on an already loaded sample; returns a new sample.

    ``sample`` is what :class:`uda.data.SegDataset` returns: ``inputs`` uint8 [3, H, W] and
    ``data_samples`` with an optional ``gt_sem_seg`` int64 [H, W] (train ids < 255 and the
    ignore index, so they travel as a uint8 mask). The input sample is left unchanged, so
    several pipelines can start from the same loaded image.
    """
    image = np.ascontiguousarray(sample['inputs'].permute(1, 2, 0).numpy())
    meta = dict(sample['data_samples'])
    label = meta.get('gt_sem_seg')
    mask = None if label is None else label.numpy().astype(np.uint8)
    image, mask = apply_pipeline(pipeline, image, mask)
    meta['img_shape'] = tuple(image.shape[:2])
    if mask is not None:
        meta['gt_sem_seg'] = torch.from_numpy(np.ascontiguousarray(mask)).long()
    inputs = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return dict(inputs=inputs, data_samples=meta)
