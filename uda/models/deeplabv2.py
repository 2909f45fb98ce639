"""DeepLab-v2 (ASPP of four dilated 3x3 convolutions, summed) as an smp architecture.

The adaptation literature (AdaptSegNet, ADVENT, SAC ...) reports DeepLab-v2 with a ResNet-101
(or VGG-16) backbone at output stride 8. Registering the model in smp's architecture table
makes ``SMPSegmentor(arch='DeepLabV2', encoder_name='resnet101')`` build it like any other smp
model, so aux heads, feature outputs, export and checkpoints work unchanged.

Reference: Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
Atrous Convolution, and Fully Connected CRFs", TPAMI 2018 (arXiv:1606.00915).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import segmentation_models_pytorch as smp
import torch.nn as nn
from segmentation_models_pytorch.base import ClassificationHead, SegmentationModel
from segmentation_models_pytorch.encoders import get_encoder
from torch import Tensor


class ASPPv2(nn.Module):
    """DeepLab-v2 classifier: parallel dilated 3x3 convolutions to class scores, summed.

    As the main classifier it reads the last encoder stage (a feature list, smp's decoder
    convention); as ADVENT's auxiliary classifier (``SMPSegmentor`` ``aux_head=dict(type='aspp')``)
    it is given one stage's map. Reference: ``ClassifierModule`` in valeoai/ADVENT
    advent/model/deeplabv2.py @3e58d45 (weights normal(0, 0.01)).

    Args:
        in_channels: Channels of the last encoder feature map.
        num_classes: Output classes.
        rates: Dilation rates of the branches (6, 12, 18, 24 in DeepLab-v2).
        summed_branches: Sum only the first N branches (None: all). AdaptSegNet's
            ``Classifier_Module.forward`` returns inside its loop, so its released models sum
            the dilation-6 and -12 branches only (wasidennis/AdaptSegNet
            model/deeplab_multi.py:114-118); 2 reproduces their logits. The other branches
            keep their weights (and get no gradient, as there).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        rates: Sequence[int] = (6, 12, 18, 24),
        summed_branches: Optional[int] = None,
    ) -> None:
        super().__init__()
        if summed_branches is not None and not 1 <= summed_branches <= len(rates):
            raise ValueError(
                f'ASPPv2: summed_branches={summed_branches} must be in 1..{len(rates)} '
                f'(the number of rates {tuple(rates)}), or None for all.'
            )
        self.summed_branches = summed_branches
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r, bias=True) for r in rates
        )
        for conv in self.branches:  # the DeepLab-v2 initialisation of the classifier
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Class scores [B, C, h, w] of a [B, C_in, h, w] map, or of the last map of a list."""
        x = features if isinstance(features, Tensor) else features[-1]
        out = self.branches[0](x)
        for conv in self.branches[1 : self.summed_branches]:
            out = out + conv(x)
        return out


def _dilate_vgg(encoder: nn.Module) -> None:
    """Turn smp's VGG encoder into the DeepLab-v2 VGG-16 at output stride 8.

    smp refuses ``output_stride=8`` for VGG (max pooling, not strided convs, downsamples). As in
    DeepLab-v2, the last two pools keep the resolution (3x3, stride 1) and the convolutions
    after the fourth pool use dilation 2, so the receptive field grows as before.
    """
    features: Any = encoder.features
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    if len(pools) < 5:
        raise ValueError(f'Expected a VGG encoder with 5 max-pool layers, found {len(pools)}.')
    for i in pools[3:]:
        features[i] = nn.MaxPool2d(3, stride=1, padding=1)
    for i in range(pools[3] + 1, len(features)):
        m = features[i]
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation, m.padding = (2, 2), (2, 2)
    encoder._output_stride = 8  # type: ignore[assignment]


def caffe_style_resnet(encoder: nn.Module) -> None:
    """Make smp's (torchvision) ResNet the Caffe-style ResNet of the DeepLab-v2 references.

    The DeepLab-v2 ResNet of AdaptSegNet, ADVENT and da-sac was ported from Caffe: each
    bottleneck strides on its 1x1 ``conv1`` (torchvision: on the 3x3 ``conv2``) and the stem's
    max pool uses ``ceil_mode=True`` (valeoai/ADVENT advent/model/deeplabv2.py:12,70;
    visinf/da-sac models/deeplabv2.py:59,126). The parameter names and shapes are the same, so
    their weights load either way, but only this form gives their outputs. Their frozen BN
    affine parameters are a training choice, set by the method (``freeze``, BN policy).
    """
    layers = [getattr(encoder, f'layer{i}', None) for i in range(1, 5)]
    if not all(isinstance(layer, nn.Sequential) for layer in layers) or not hasattr(
        encoder, 'maxpool'
    ):
        raise ValueError(
            "DeepLabV2(encoder_style='caffe') needs a ResNet encoder (resnet50, resnet101 ...), "
            f'got {type(encoder).__name__}.'
        )
    encoder.maxpool.ceil_mode = True  # type: ignore[union-attr]
    for layer in layers:
        for block in layer:  # type: ignore[union-attr]
            if not hasattr(block, 'conv3'):
                raise ValueError(
                    "DeepLabV2(encoder_style='caffe') needs a bottleneck ResNet (resnet50 / "
                    '101 / 152): the Caffe form moves the stride to the 1x1 conv1.'
                )
            conv1, conv2 = block.conv1, block.conv2
            if conv2.stride != (1, 1):
                conv1.stride, conv2.stride = conv2.stride, (1, 1)


class DeepLabV2(SegmentationModel):
    """DeepLab-v2: an smp encoder at output stride 8 and the ASPP-v2 classifier.

    ``forward`` returns logits [B, C, H/8, W/8]; :class:`uda.models.SMPSegmentor` upsamples
    them to the input size.

    Args:
        encoder_name: smp encoder (``resnet101``, ``resnet50``, ``resnet18``, ``vgg16`` ...).
        encoder_weights: Pretrained weights name or None (no download).
        in_channels: Input channels.
        classes: Output classes.
        encoder_depth: Encoder stages (5).
        output_stride: 8 (DeepLab-v2) or 16.
        rates: ASPP dilation rates.
        summed_branches: Sum only the first N ASPP branches (AdaptSegNet's released models:
            2; :class:`ASPPv2`).
        encoder_style: ``'torchvision'`` (smp's ResNet) or ``'caffe'``: the Caffe-style ResNet
            of the DeepLab-v2 references (:func:`caffe_style_resnet`), which their released
            checkpoints need to give their outputs.
        aux_params: smp's image-level classification head on the last stage
            (``dict(classes=K, pooling='avg', dropout=0.2, activation=None)``), as in smp's
            own models; ``SMPSegmentor`` exposes it as head ``cls``.
    """

    requires_divisible_input_shape = False

    def __init__(
        self,
        encoder_name: str = 'resnet101',
        encoder_weights: Optional[str] = None,
        in_channels: int = 3,
        classes: int = 19,
        encoder_depth: int = 5,
        output_stride: int = 8,
        rates: Sequence[int] = (6, 12, 18, 24),
        summed_branches: Optional[int] = None,
        encoder_style: str = 'torchvision',
        aux_params: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        if encoder_style not in ('torchvision', 'caffe'):
            raise ValueError(
                f"DeepLabV2: encoder_style must be 'torchvision' or 'caffe', got {encoder_style!r}."
            )
        if output_stride not in (8, 16):
            raise ValueError(f'DeepLabV2: output_stride must be 8 or 16, got {output_stride}.')
        if encoder_name.startswith('vgg'):
            if output_stride != 8:
                raise ValueError('DeepLabV2 with a VGG encoder supports output_stride=8 only.')
            self.encoder = get_encoder(
                encoder_name, in_channels=in_channels, depth=encoder_depth, weights=encoder_weights
            )
            _dilate_vgg(self.encoder)
        else:
            self.encoder = get_encoder(
                encoder_name,
                in_channels=in_channels,
                depth=encoder_depth,
                weights=encoder_weights,
                output_stride=output_stride,
            )
        if encoder_style == 'caffe':
            caffe_style_resnet(self.encoder)
        self.decoder = ASPPv2(self.encoder.out_channels[-1], classes, rates, summed_branches)
        self.segmentation_head = nn.Identity()
        self.classification_head = (
            None
            if aux_params is None
            else ClassificationHead(in_channels=self.encoder.out_channels[-1], **aux_params)
        )
        self.name = f'deeplabv2-{encoder_name}'

    def forward(self, x: Tensor) -> Union[Tensor, tuple[Tensor, Tensor]]:
        """Logits [B, C, H/8, W/8]; with ``aux_params`` also class logits [B, K], as smp does."""
        features = self.encoder(x)
        masks = self.segmentation_head(self.decoder(features))
        if self.classification_head is not None:
            return masks, self.classification_head(features[-1])
        return masks


# Register with smp so `smp.create_model('DeepLabV2', ...)` (and SMPSegmentor) can build it.
smp.MODEL_ARCHITECTURES_MAPPING.setdefault('deeplabv2', DeepLabV2)
