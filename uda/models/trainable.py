"""Which parameters of a network train: ``train_only``, the inverse of a segmentor's ``freeze``.

Test-time adaptation updates a small part of a deployed network: TENT only the affine weight and
bias of the normalisation layers (DequanWang/tent ``tent.py:64-80`` ``collect_params``: every
``nn.BatchNorm2d``; on a SegFormer the CoTTA ACDC code trains every parameter whose name holds
``norm`` or ``bn``, Anonymous-012/SVDP ``mmseg/apis/test.py:298-365``). A name pattern cannot
reach smp's decoder BatchNorms (named ``decoder.blocks.0.conv1.1``), so ``norm=True`` selects
them by type.
"""

from __future__ import annotations

import re
from typing import Sequence, Union, cast

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

# Normalisation layers whose affine parameters ``norm=True`` selects.
NORM_TYPES: tuple[type, ...] = (
    _BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
)

TrainOnly = Union[Sequence[str], dict]


def _spec(train_only: TrainOnly) -> tuple[list[str], bool]:
    if isinstance(train_only, dict):
        unknown = sorted(set(train_only) - {'patterns', 'norm'})
        if unknown:
            raise ValueError(
                f'train_only: unknown key(s) {unknown}; use a list of name patterns or '
                "dict(norm=True, patterns=['net.segmentation_head'])."
            )
        return list(train_only.get('patterns', ())), bool(train_only.get('norm', False))
    if isinstance(train_only, str) or not isinstance(train_only, (list, tuple)):
        raise TypeError(
            f'train_only={train_only!r}: give a list of regular expressions over parameter '
            "names (['norm', 'bn']) or dict(norm=True, patterns=[...])."
        )
    return list(train_only), False


def train_only_names(module: nn.Module, train_only: TrainOnly) -> list[str]:
    """Names of the parameters of ``module`` that ``train_only`` selects.

    Args:
        module: The network.
        train_only: Regular expressions searched in the parameter names (``['norm', 'bn']``),
            or ``dict(patterns=[...], norm=True)``: ``norm`` adds the affine parameters of
            every BatchNorm / LayerNorm / GroupNorm / InstanceNorm layer.

    Returns:
        The sorted selected names; a pattern that matches nothing is an error.
    """
    patterns, norm = _spec(train_only)
    all_names = [n for n, _ in module.named_parameters()]
    names: set[str] = set()
    for pattern in patterns:
        hit = {n for n in all_names if re.search(pattern, n)}
        if not hit:
            raise ValueError(
                f'train_only pattern {pattern!r} matches no parameter; names look like '
                f'{all_names[:3]}.'
            )
        names |= hit
    if norm:
        for prefix, m in module.named_modules():
            if isinstance(m, NORM_TYPES):
                params = cast(nn.Module, m).named_parameters()
                names |= {f'{prefix}.{n}' if prefix else n for n, _ in params}
    if not names:
        raise ValueError(
            f'train_only={train_only!r} selects no parameter of {type(module).__name__} (no '
            'normalisation layer with affine parameters?); give patterns of parameter names.'
        )
    return sorted(names)


def apply_train_only(module: nn.Module, train_only: TrainOnly) -> list[str]:
    """Let only the parameters ``train_only`` selects take gradients; return the frozen names."""
    keep = set(train_only_names(module, train_only))
    frozen = []
    for name, p in module.named_parameters():
        if name not in keep:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


__all__ = ['NORM_TYPES', 'apply_train_only', 'train_only_names']
