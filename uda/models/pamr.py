"""Pixel-adaptive mask refinement (PAMR) and the stochastic gate of single-stage CAM training.

Both come from Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels",
CVPR 2020 (arXiv:2005.08104); reference code visinf/1-stage-wseg ``models/mods/pamr.py``,
``models/mods/sg.py`` and ``models/mods/gci.py`` (commit d905fca).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

# The 8 neighbours of a 3x3 window as (row, col) offsets in units of the dilation, in the order
# of the reference's shift kernels (LocalAffinity._init_aff).
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
# The full 3x3 window (centre included), for the local standard deviation (LocalStDev).
WINDOW = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1))


def shifted(x: Tensor, dilations: Sequence[int], offsets: Sequence[tuple[int, int]]) -> Tensor:
    """Values of ``x`` [B, K, H, W] at ``offsets`` x each dilation: [B, K, P, H, W].

    Borders replicate the edge pixels, as the reference pads with ``mode='replicate'``.
    P = len(dilations) * len(offsets), dilation-major as the reference concatenates.
    """
    H, W = x.shape[-2:]
    out = []
    for d in dilations:
        pad = F.pad(x, [d] * 4, mode='replicate')
        for dy, dx in offsets:
            out.append(pad[..., d + dy * d : d + dy * d + H, d + dx * d : d + dx * d + W])
    return torch.stack(out, 2)


class PAMR(nn.Module):
    """Pixel-adaptive mask refinement: masks diffuse along image-colour affinities.

    Affinity of pixel i to neighbour j (8 neighbours at each dilation):
    ``-|I_i - I_j| / (1e-8 + 0.1 * sigma_i)``, with sigma_i the standard deviation of the image
    over i's 3x3 windows at all dilations, averaged over image channels and normalised by a
    softmax over all neighbours. Each iteration replaces a mask value by the affinity-weighted
    mean of its neighbours' values. Batched, no parameters; the image should be at the masks'
    resolution (``forward`` resizes the masks to it otherwise).
    Reference: visinf/1-stage-wseg ``models/mods/pamr.py`` (PAMR, LocalAffinityAbs,
    LocalStDev); dilations and iterations from ``core/config.py`` (``PAMR_KERNEL``,
    ``PAMR_ITER``).

    Args:
        num_iter: Refinement iterations (``PAMR_ITER`` = 10).
        dilations: Dilations of the 3x3 neighbourhoods (``PAMR_KERNEL`` = 1, 2, 4, 8, 12, 24).
        sigma_scale: Scale of the local standard deviation in the affinity (0.1).
        eps: Added to the scaled standard deviation (1e-8).
    """

    def __init__(
        self,
        num_iter: int = 10,
        dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
        sigma_scale: float = 0.1,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if num_iter < 0 or not dilations or min(int(d) for d in dilations) < 1:
            raise ValueError(
                f'PAMR(num_iter={num_iter}, dilations={dilations}): give num_iter >= 0 and '
                'positive dilations, e.g. (1, 2, 4, 8, 12, 24).'
            )
        self.num_iter = int(num_iter)
        self.dilations = tuple(int(d) for d in dilations)
        self.sigma_scale, self.eps = float(sigma_scale), float(eps)

    def affinity(self, image: Tensor) -> Tensor:
        """Neighbour weights [B, 1, P, H, W] (summing to 1 over P) of ``image`` [B, K, H, W]."""
        image = image.float()
        # Unbiased std over the P = 9 * len(dilations) window values, as torch.std in the
        # reference.
        sigma = shifted(image, self.dilations, WINDOW).std(2, keepdim=True)
        diff = (image.unsqueeze(2) - shifted(image, self.dilations, NEIGHBOURS)).abs()
        aff = -diff / (self.eps + self.sigma_scale * sigma)
        return aff.mean(1, keepdim=True).softmax(2)

    def forward(self, image: Tensor, masks: Tensor) -> Tensor:
        """Refine ``masks`` [B, C, h, w] on ``image`` [B, K, H, W]; returns [B, C, H, W]."""
        if masks.shape[-2:] != image.shape[-2:]:
            masks = F.interpolate(masks, image.shape[-2:], mode='bilinear', align_corners=True)
        aff = self.affinity(image)
        masks = masks.float()
        H, W = masks.shape[-2:]
        for _ in range(self.num_iter):
            # Accumulate neighbour by neighbour: the same sum as
            # (shifted(masks, ...) * aff).sum(2) without its [B, C, P, H, W] tensor.
            out = torch.zeros_like(masks)
            p = 0
            for d in self.dilations:
                pad = F.pad(masks, [d] * 4, mode='replicate')
                for dy, dx in NEIGHBOURS:
                    window = pad[..., d + dy * d : d + dy * d + H, d + dx * d : d + dx * d + W]
                    out += window * aff[:, :, p]
                    p += 1
            masks = out
        return masks


class StochasticGate(nn.Module):
    """Stochastic gate: mixes deep and shallow features, randomly in training.

    Training: ``M * (deep - psi * shallow) / (1 - psi) + (1 - M) * shallow`` with M a per-element
    Bernoulli mask that is 1 with probability ``1 - psi`` (so E[output] = deep); test:
    ``(1 - psi) * deep + psi * shallow``. Reference: visinf/1-stage-wseg ``models/mods/sg.py``
    (``SG_PSI`` = 0.3 in ``core/config.py``). The reference caches its all-ones mask at the first
    batch's shape; here it is drawn at every call's shape.

    Args:
        psi: Probability of the shallow features (0.3).
    """

    def __init__(self, psi: float = 0.3) -> None:
        super().__init__()
        if not 0.0 <= psi < 1.0:
            raise ValueError(f'StochasticGate(psi={psi}): psi must be in [0, 1).')
        self.psi = float(psi)

    def forward(self, deep: Tensor, shallow: Tensor) -> Tensor:
        if deep.shape != shallow.shape:
            raise ValueError(
                f'StochasticGate: deep {tuple(deep.shape)} and shallow {tuple(shallow.shape)} '
                'features must have the same shape.'
            )
        psi = self.psi
        if not self.training:
            return (1 - psi) * deep + psi * shallow
        keep = (torch.rand_like(deep) >= psi).to(deep.dtype)
        return keep * (deep - psi * shallow) / max(1e-8, 1 - psi) + (1 - keep) * shallow


class GlobalCueInjection(nn.Module):
    """Shallow features modulated by global cues of the deep ones (adaptive instance norm).

    ``gamma, beta`` = global max of ``conv1x1-BN-ReLU(deep)`` (2 x ``channels``); the shallow
    features go through ``conv1x1-BN(affine=False)``, ``ReLU(x * (gamma + 1) + beta)`` and
    ``conv1x1-BN-ReLU`` to ``out_channels``, the input of the stochastic gate's shallow side.
    Reference: visinf/1-stage-wseg ``models/mods/gci.py`` (GCI, 256 channels there).

    Args:
        shallow_channels: Channels of the shallow (encoder) features.
        deep_channels: Channels of the deep (decoder) features.
        channels: Hidden channels (256 in the reference).
        out_channels: Output channels (the deep features' channels, for the gate).
    """

    def __init__(
        self, shallow_channels: int, deep_channels: int, channels: int, out_channels: int
    ) -> None:
        super().__init__()

        def block(cin: int, cout: int, relu: bool = True, affine: bool = True) -> nn.Sequential:
            conv = nn.Conv2d(cin, cout, 1, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout, affine=affine)]
            return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)

        self.channels = int(channels)
        self.fc_deep = block(deep_channels, 2 * channels)
        self.fc_skip = block(shallow_channels, channels, relu=False, affine=False)
        self.fc_cls = block(channels, out_channels)

    def forward(self, shallow: Tensor, deep: Tensor) -> Tensor:
        attrs = self.fc_deep(deep).flatten(2).amax(-1).view(-1, 2, self.channels)
        gamma, beta = attrs[:, 0, :, None, None], attrs[:, 1, :, None, None]
        x = F.relu(self.fc_skip(shallow) * (gamma + 1) + beta)
        return self.fc_cls(x)


__all__ = ['PAMR', 'GlobalCueInjection', 'StochasticGate', 'shifted']
