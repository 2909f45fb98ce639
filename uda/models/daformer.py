"""DAFormer: MiT encoder + context-aware fusion decoder, as an smp architecture.

DAFormer (Hoyer et al., CVPR 2022, arXiv:2111.14887) embeds each of the four encoder stages to
256 channels with a linear layer, upsamples them to the stride-4 size, concatenates them and
fuses them with a depthwise-separable ASPP (dilations 1, 6, 12, 18) and a 3x3 bottleneck, then
classifies with dropout 0.1 and a 1x1 convolution. Reference: lhoyer/DAFormer@e6f6e04
``mmseg/models/decode_heads/daformer_head.py`` (``DAFormerHead``, ``ASPPWrapper``) with
``configs/_base_/models/daformer_sepaspp_mitb5.py`` (the "DAFormer" row of the paper's Tab. 7).

Registering the model in smp's architecture table makes
``SMPSegmentor(arch='DAFormer', encoder_name='mit_b5')`` build it like any other smp model.
Module names follow mmcv's (``ConvModule``: ``conv``/``bn``; ``DepthwiseSeparableConvModule``:
``depthwise_conv``/``pointwise_conv``), so a DAFormer / MIC checkpoint maps by prefixes only:
``decode_head.conv_seg.`` -> ``segmentation_head.conv_seg.``, ``decode_head.`` -> ``decoder.``,
``backbone.`` -> ``encoder.`` (smp's MiT keeps the SegFormer parameter names).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Optional, Sequence

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F
from segmentation_models_pytorch.base import ClassificationHead, SegmentationModel
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor


class ConvModule(nn.Sequential):
    """Convolution (no bias) + BatchNorm + ReLU, named as mmcv's ``ConvModule``
    (``conv``, ``bn``, ``activate``; ``bias='auto'`` drops the bias before a norm)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(
                    in_channels,
                    out_channels,
                    kernel_size,
                    padding=padding,
                    dilation=dilation,
                    groups=groups,
                    bias=False,
                ),
                bn=nn.BatchNorm2d(out_channels),
                activate=nn.ReLU(inplace=True),
            )
        )


class DepthwiseSeparableConvModule(nn.Sequential):
    """Depthwise 3x3 ConvModule then pointwise 1x1 ConvModule, each with BN + ReLU, named as
    mmcv's ``DepthwiseSeparableConvModule`` (``depthwise_conv``, ``pointwise_conv``)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            OrderedDict(
                depthwise_conv=ConvModule(
                    in_channels, in_channels, 3, dilation, dilation, groups=in_channels
                ),
                pointwise_conv=ConvModule(in_channels, out_channels, 1),
            )
        )


class LinearEmbed(nn.Module):
    """Per-pixel linear embedding of a [B, C, h, w] map to [B, D, h, w].

    SegFormer's ``MLP`` (lhoyer/DAFormer ``mmseg/models/decode_heads/segformer_head.py``): one
    ``nn.Linear`` named ``proj`` on the flattened tokens, no norm, no activation.
    """

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        y = self.proj(x.flatten(2).transpose(1, 2))
        return y.transpose(1, 2).reshape(b, -1, h, w)


class SeparableASPPFusion(nn.Module):
    """DAFormer's context-aware fusion (``ASPPWrapper`` with ``sep=True, pool=False``).

    Branch ``aspp_modules.0`` is a 1x1 ConvModule (dilation 1); the others are depthwise-
    separable 3x3 ConvModules at their dilation (mmseg ``DepthwiseSeparableASPPModule``). The
    concatenated branches go through ``bottleneck``, a 3x3 ConvModule to ``channels``.

    Args:
        in_channels: Channels of the concatenated stage embeddings (4 x 256).
        channels: Output channels (256).
        dilations: One branch per dilation ((1, 6, 12, 18)).
    """

    def __init__(self, in_channels: int, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.aspp_modules = nn.ModuleList(
            ConvModule(in_channels, channels, 1)
            if d == 1
            else DepthwiseSeparableConvModule(in_channels, channels, d)
            for d in dilations
        )
        self.bottleneck = ConvModule(len(dilations) * channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.bottleneck(torch.cat([m(x) for m in self.aspp_modules], dim=1))


class DAFormerDecoder(nn.Module):
    """Embeds the last ``len(in_channels)`` encoder stages, resizes them to the first one's size
    (bilinear, ``align_corners=False`` as DAFormer asserts) and fuses them.

    Args:
        in_channels: Channels of the stages read (MiT-B5: 64, 128, 320, 512).
        embed_dim: Channels of each stage embedding (256).
        channels: Fused output channels (256).
        dilations: Dilations of the fusion branches ((1, 6, 12, 18)).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        embed_dim: int = 256,
        channels: int = 256,
        dilations: Sequence[int] = (1, 6, 12, 18),
    ) -> None:
        super().__init__()
        self.num_stages = len(in_channels)
        self.embed_layers = nn.ModuleDict(
            {str(i): LinearEmbed(c, embed_dim) for i, c in enumerate(in_channels)}
        )
        self.fuse_layer = SeparableASPPFusion(embed_dim * len(in_channels), channels, dilations)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Fused map [B, channels, H/4, W/4] of smp's stage list (the last stages are read)."""
        stages = list(features)[-self.num_stages :]
        size = stages[0].shape[-2:]
        embedded = []
        for i, x in enumerate(stages):
            y = self.embed_layers[str(i)](x)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size, mode='bilinear', align_corners=False)
            embedded.append(y)
        return self.fuse_layer(torch.cat(embedded, dim=1))


def init_daformer_head(decoder: nn.Module, seg_head: nn.Module) -> None:
    """mmcv's initialisation of the head: ConvModule convolutions Kaiming-normal (fan-out,
    ReLU), BatchNorm 1 / 0, the linear embeddings PyTorch's default, and the classifier
    ``conv_seg`` normal(0, 0.01) (mmseg ``BaseDecodeHead`` ``init_cfg``)."""
    for m in decoder.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in seg_head.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DAFormer(SegmentationModel):
    """DAFormer: an smp encoder (MiT-B5 in the paper) and DAFormer's fusion decoder.

    ``forward`` returns logits [B, C, H/4, W/4]; :class:`uda.models.SMPSegmentor` upsamples them
    to the input size (bilinear; set ``align_corners=False`` there, as DAFormer).

    Args:
        encoder_name: smp encoder (``mit_b5``; any encoder with >= 4 stages works).
        encoder_weights: Pretrained weights name or None (no download).
        in_channels: Input channels.
        classes: Output classes.
        encoder_depth: Encoder stages (5).
        decoder_embed_dim: Channels of each stage embedding (``embed_dims`` 256).
        decoder_channels: Fused channels (``channels`` 256).
        decoder_dilations: Fusion ASPP dilations ((1, 6, 12, 18)).
        decoder_dropout: Dropout2d before the classifier (``dropout_ratio`` 0.1).
        aux_params: smp's image-level classification head on the last stage, as in smp's own
            models; ``SMPSegmentor`` exposes it as head ``cls``.
        **kwargs: Passed to smp's ``get_encoder`` (timm arguments of ``tu-`` encoders).
    """

    requires_divisible_input_shape = False

    def __init__(
        self,
        encoder_name: str = 'mit_b5',
        encoder_weights: Optional[str] = None,
        in_channels: int = 3,
        classes: int = 19,
        encoder_depth: int = 5,
        decoder_embed_dim: int = 256,
        decoder_channels: int = 256,
        decoder_dilations: Sequence[int] = (1, 6, 12, 18),
        decoder_dropout: float = 0.1,
        aux_params: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        meta = torch.get_default_device().type == 'meta'
        # smp's MiT reads its drop-path rates with .item() while building, which the meta
        # device cannot do; there the encoder is built on the CPU and moved (shapes only, for
        # key-and-shape checks of checkpoints).
        with torch.device('cpu') if meta else contextlib.nullcontext():
            self.encoder = get_encoder(
                encoder_name,
                in_channels=in_channels,
                depth=encoder_depth,
                weights=encoder_weights,
                **kwargs,
            )
        if meta:
            self.encoder.to('meta')
        stages = [c for c in self.encoder.out_channels[1:] if c > 0][-4:]
        if len(stages) < 4:
            raise ValueError(
                f'DAFormer reads four encoder stages; {encoder_name} with '
                f'encoder_depth={encoder_depth} gives {len(stages)} ({stages}). Use '
                'encoder_depth=5.'
            )
        self.decoder = DAFormerDecoder(
            stages, decoder_embed_dim, decoder_channels, tuple(decoder_dilations)
        )
        self.segmentation_head = nn.Sequential(
            OrderedDict(
                dropout=nn.Dropout2d(decoder_dropout),
                conv_seg=nn.Conv2d(decoder_channels, classes, kernel_size=1),
            )
        )
        self.classification_head = (
            None
            if aux_params is None
            else ClassificationHead(in_channels=self.encoder.out_channels[-1], **aux_params)
        )
        init_daformer_head(self.decoder, self.segmentation_head)
        self.name = f'daformer-{encoder_name}'


# Register with smp so `smp.create_model('DAFormer', ...)` (and SMPSegmentor) can build it.
smp.MODEL_ARCHITECTURES_MAPPING.setdefault('daformer', DAFormer)
