"""UniMatch's DeepLab-v3+ (Yang et al., CVPR 2023, arXiv:2208.09910) as an smp architecture.

UniMatch's network differs from smp's ``DeepLabV3Plus``: its ResNet-101 has a deep stem
(3x3 convolutions 3->64->64->128, 128 channels into ``layer1``), its ASPP has an image-pooling
branch and no separable convolutions, and the stride-4 features reduced to 48 channels are
fused with the ASPP output by *two* 3x3 convolutions before a separate 1x1 classifier.
Reference: LiheYoung/UniMatch@0324f3d ``model/backbone/resnet.py`` and
``model/semseg/deeplabv3plus.py``.

The encoder is timm's ``resnet101s`` through smp (``encoder_name='tu-resnet101s'``): the same
deep stem (``conv1.{0,1,3,4,6}``, ``bn1`` with 128 channels), Bottleneck blocks with the stride
on ``conv2``, 1x1-conv downsampling, and at ``output_stride=16`` the torchvision dilation rule
(``replace_stride_with_dilation=[False, False, True]``: the first ``layer4`` block keeps
dilation 1). Its parameter names equal UniMatch's, so a UniMatch checkpoint maps by prefixes:
``backbone.`` -> ``encoder.model.``, ``head.``/``reduce.``/``fuse.`` -> ``decoder.*``,
``classifier.`` -> ``segmentation_head.classifier.``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F
from segmentation_models_pytorch.base import ClassificationHead, SegmentationModel
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1
) -> nn.Sequential:
    """Convolution (no bias), BatchNorm, ReLU: keys ``0.weight``, ``1.*`` as UniMatch's blocks."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPPPooling(nn.Module):
    """Image pooling branch: global average, 1x1 conv + BN + ReLU (``gap``), bilinear back to
    the map size with ``align_corners=True`` (UniMatch ``ASPPPooling``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.gap = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, out_channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.gap(x), x.shape[-2:], mode='bilinear', align_corners=True)


class ASPPModule(nn.Module):
    """UniMatch's ASPP: a 1x1 branch ``b0``, 3x3 atrous branches ``b1``-``b3`` and image pooling
    ``b4``, concatenated and projected by a 1x1 conv + BN + ReLU (``project``, no dropout).

    Args:
        in_channels: Channels of the last encoder stage (2048).
        out_channels: Channels of every branch and of the output (UniMatch: in_channels // 8).
        rates: Dilations of ``b1``-``b3`` ((6, 12, 18)).
    """

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        if len(rates) != 3:
            raise ValueError(f'UniMatch ASPP has three atrous branches; got rates {tuple(rates)}.')
        self.b0 = conv_bn_relu(in_channels, out_channels, 1)
        self.b1 = conv_bn_relu(in_channels, out_channels, 3, rates[0])
        self.b2 = conv_bn_relu(in_channels, out_channels, 3, rates[1])
        self.b3 = conv_bn_relu(in_channels, out_channels, 3, rates[2])
        self.b4 = ASPPPooling(in_channels, out_channels)
        self.project = conv_bn_relu(5 * out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.b0, self.b1, self.b2, self.b3, self.b4)
        return self.project(torch.cat([b(x) for b in branches], dim=1))


class UniMatchDecoder(nn.Module):
    """ASPP on the last stage (``head``), 48-channel reduction of the stride-4 stage
    (``reduce``), and two 3x3 convolutions on their concatenation (``fuse``).

    Reads only the stride-4 stage (smp index 2, UniMatch ``c1``) and the last one (``c4``), so
    UniMatch's feature perturbation (Dropout2d on ``c1`` and ``c4``) is any dropout on the
    stage list that covers these two.

    Args:
        low_channels: Channels of the stride-4 stage (256).
        high_channels: Channels of the last stage (2048).
        rates: ASPP dilations ((6, 12, 18)).
        aspp_channels: ASPP channels (None: ``high_channels // 8`` as UniMatch).
        channels: Output channels of ``fuse`` (256).
        low_reduced: Channels of the reduced stride-4 features (48).
    """

    def __init__(
        self,
        low_channels: int,
        high_channels: int,
        rates: Sequence[int] = (6, 12, 18),
        aspp_channels: Optional[int] = None,
        channels: int = 256,
        low_reduced: int = 48,
    ) -> None:
        super().__init__()
        aspp = high_channels // 8 if aspp_channels is None else int(aspp_channels)
        self.head = ASPPModule(high_channels, aspp, rates)
        self.reduce = conv_bn_relu(low_channels, low_reduced, 1)
        self.fuse = nn.Sequential(
            *conv_bn_relu(aspp + low_reduced, channels, 3), *conv_bn_relu(channels, channels, 3)
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Fused map [B, channels, H/4, W/4] of smp's stage list."""
        c1, c4 = features[2], features[-1]
        c4 = self.head(c4)
        c4 = F.interpolate(c4, c1.shape[-2:], mode='bilinear', align_corners=True)
        return self.fuse(torch.cat([self.reduce(c1), c4], dim=1))


class UniMatchDeepLabV3Plus(SegmentationModel):
    """UniMatch's DeepLab-v3+: an smp encoder (``tu-resnet101s`` at output stride 16 in the
    paper) with :class:`UniMatchDecoder` and a 1x1 ``classifier`` (with bias).

    ``forward`` returns logits [B, C, H/4, W/4]; :class:`uda.models.SMPSegmentor` upsamples them
    to the input size (set ``align_corners=True`` there, as UniMatch). Any input size works (the
    ASPP output is resized to the stride-4 size), as in UniMatch's 801x801 crops.

    Args:
        encoder_name: smp encoder (``tu-resnet101s``: UniMatch's deep-stem ResNet-101).
        encoder_weights: Pretrained weights name or None (no download).
        in_channels: Input channels.
        classes: Output classes.
        encoder_depth: Encoder stages (5).
        encoder_output_stride: 16 (UniMatch's ``replace_stride_with_dilation=[False, False,
            True]``) or 8.
        decoder_atrous_rates: ASPP dilations ((6, 12, 18), UniMatch ``dilations``).
        decoder_aspp_channels: ASPP channels (None: last-stage channels // 8).
        decoder_channels: Channels of ``fuse`` (256).
        aux_params: smp's image-level classification head on the last stage (head ``cls``).
        **kwargs: Passed to smp's ``get_encoder`` (timm arguments of ``tu-`` encoders).
    """

    requires_divisible_input_shape = False

    def __init__(
        self,
        encoder_name: str = 'tu-resnet101s',
        encoder_weights: Optional[str] = None,
        in_channels: int = 3,
        classes: int = 19,
        encoder_depth: int = 5,
        encoder_output_stride: int = 16,
        decoder_atrous_rates: Sequence[int] = (6, 12, 18),
        decoder_aspp_channels: Optional[int] = None,
        decoder_channels: int = 256,
        aux_params: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if encoder_output_stride not in (8, 16):
            raise ValueError(
                f'UniMatchDeepLabV3Plus: encoder_output_stride must be 8 or 16, got '
                f'{encoder_output_stride}.'
            )
        if encoder_depth != 5:
            raise ValueError(
                f'UniMatchDeepLabV3Plus reads the last of 5 encoder stages; got '
                f'encoder_depth={encoder_depth}.'
            )
        self.encoder = get_encoder(
            encoder_name,
            in_channels=in_channels,
            depth=encoder_depth,
            weights=encoder_weights,
            output_stride=encoder_output_stride,
            **kwargs,
        )
        chans = self.encoder.out_channels
        self.decoder = UniMatchDecoder(
            chans[2],
            chans[-1],
            tuple(decoder_atrous_rates),
            decoder_aspp_channels,
            decoder_channels,
        )
        self.segmentation_head = nn.Sequential(
            OrderedDict(classifier=nn.Conv2d(decoder_channels, classes, 1, bias=True))
        )
        self.classification_head = (
            None if aux_params is None else ClassificationHead(in_channels=chans[-1], **aux_params)
        )
        self.name = f'unimatch-deeplabv3plus-{encoder_name}'


# Register with smp so `smp.create_model('UniMatchDeepLabV3Plus', ...)` (and SMPSegmentor) can
# build it.
smp.MODEL_ARCHITECTURES_MAPPING.setdefault('unimatchdeeplabv3plus', UniMatchDeepLabV3Plus)
