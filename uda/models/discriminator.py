"""Domain discriminators for adversarial alignment (output, entropy-map and feature level)."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn
from torch import Tensor

from uda.registry import MODELS


@MODELS.register_module()
class FCDiscriminator(nn.Module):
    """Fully-convolutional discriminator of AdaptSegNet / ADVENT (arXiv:1802.10349).

    4x4 convolutions with stride 2 and LeakyReLU(0.2) through ``channels`` (64-128-256-512),
    then a 4x4 stride-2 convolution to one raw score per location: output stride 2^(n+1).
    No normalisation layers, as in the reference, so source and target batches are scored
    independently.

    Args:
        in_channels: Channels of the input map (the number of classes for softmax / entropy
            maps); adversarial terms fill it in from the segmentor.
        channels: Widths of the hidden convolutions.
        negative_slope: LeakyReLU slope.

    Shapes:
        [B, in_channels, H, W] -> [B, 1, H / 32, W / 32] for the default four hidden layers.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (64, 128, 256, 512),
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if in_channels < 1 or not channels:
            raise ValueError(
                f'FCDiscriminator(in_channels={in_channels}, channels={channels}): '
                'both must be positive / non-empty.'
            )
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            layers += [
                nn.Conv2d(prev, ch, 4, stride=2, padding=1),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
            prev = ch
        layers.append(nn.Conv2d(prev, 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@MODELS.register_module()
class FeatureDiscriminator(nn.Module):
    """Per-location domain classifier for encoder or decoder features (DANN-style).

    Features are already down-sampled, so this keeps their resolution: ``kernel_size``
    convolutions (stride 1) with LeakyReLU(0.2) through ``channels``, then a 1x1 convolution
    to one raw score per location.

    Args:
        in_channels: Channels of the feature map; filled in from the segmentor by the term.
        channels: Widths of the hidden layers.
        kernel_size: 1 (a pixel-wise MLP) or 3 (some spatial context).
        negative_slope: LeakyReLU slope.

    Shapes:
        [B, in_channels, h, w] -> [B, 1, h, w].
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (256, 256),
        kernel_size: int = 1,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if in_channels < 1 or kernel_size not in (1, 3):
            raise ValueError(
                f'FeatureDiscriminator(in_channels={in_channels}, kernel_size='
                f'{kernel_size}): in_channels must be positive and kernel_size 1 or '
                '3.'
            )
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            layers += [
                nn.Conv2d(prev, ch, kernel_size, padding=kernel_size // 2),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
            prev = ch
        layers.append(nn.Conv2d(prev, 1, 1))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
