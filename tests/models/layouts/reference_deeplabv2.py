"""Minimal re-implementations of the reference DeepLab-v2 networks, for the layout tests.

Plain torch with the references' parameter names (visinf/da-sac models/deeplabv2.py and
models/sac.py, valeoai/ADVENT advent/model/deeplabv2.py, wasidennis/AdaptSegNet
model/deeplab_multi.py): Caffe-style bottlenecks (stride on the 1x1 conv1), a ceil_mode max
pool, dilated layer3/4 and summed ``Classifier_Module``s. ``tiny_bottleneck_encoder`` registers
an smp ResNet with one bottleneck per stage so the same structure runs in a few seconds.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F
from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
from torchvision.models.resnet import Bottleneck as TvBottleneck

TINY = 'resnet_tiny_bottleneck'  # one bottleneck per stage


@contextlib.contextmanager
def tiny_bottleneck_encoder() -> Iterator[None]:
    """smp's encoder table gains ``TINY`` for the duration (the layouts look depths up there)."""
    smp.encoders.encoders[TINY] = dict(
        encoder=ResNetEncoder,
        pretrained_settings={},
        params=dict(
            out_channels=[3, 64, 256, 512, 1024, 2048], block=TvBottleneck, layers=[1, 1, 1, 1]
        ),
    )
    try:
        yield
    finally:
        smp.encoders.encoders.pop(TINY)


class RefBottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1, downsample: Any = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)  # Caffe: stride here
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class RefClassifier(nn.Module):
    """``Classifier_Module``; ``buggy``: AdaptSegNet's return inside the loop."""

    def __init__(self, inplanes: int, num_classes: int, buggy: bool = False) -> None:
        super().__init__()
        self.buggy = buggy
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(inplanes, num_classes, 3, padding=d, dilation=d) for d in (6, 12, 18, 24)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d_list[0](x)
        for i in range(len(self.conv2d_list) - 1):
            out = out + self.conv2d_list[i + 1](x)
            if self.buggy:
                return out
        return out


class RefResNet(nn.Module):
    """``ResNet`` (da-sac: ``layer5`` on layer4) or ``ResNetMulti`` (ADVENT / AdaptSegNet:
    ``layer5`` on layer3, ``layer6`` on layer4)."""

    def __init__(self, layers: list[int], num_classes: int, multi: bool, buggy: bool = False):
        super().__init__()
        self.multi, self.inplanes = multi, 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], dilation=2)
        self.layer4 = self._make_layer(512, layers[3], dilation=4)
        if multi:
            self.layer5 = RefClassifier(1024, num_classes, buggy)
            self.layer6 = RefClassifier(2048, num_classes, buggy)
        else:
            self.layer5 = RefClassifier(2048, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1):
        down = nn.Sequential(
            nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * 4),
        )
        layers = [RefBottleneck(self.inplanes, planes, stride, dilation, down)]
        self.inplanes = planes * 4
        layers += [RefBottleneck(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> Any:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x3 = self.layer3(self.layer2(self.layer1(x)))
        if not self.multi:
            return self.layer5(self.layer4(x3))
        return self.layer5(x3), self.layer6(self.layer4(x3))


class RefDeepLabV2(nn.Module):
    """da-sac ``DeepLabV2_ResNet101``: the ResNet as ``model``."""

    def __init__(self, layers: list[int], num_classes: int) -> None:
        super().__init__()
        self.model = RefResNet(layers, num_classes, multi=False)


class RefSAC(nn.Module):
    """da-sac ``SAC``: ``backbone``, ``slow_net`` and the class-prior buffers."""

    def __init__(self, layers: list[int], num_classes: int, teacher: bool) -> None:
        super().__init__()
        self.backbone = RefDeepLabV2(layers, num_classes)
        if teacher:
            self.slow_net = RefDeepLabV2(layers, num_classes)
            self.register_buffer('running_conf', torch.rand(num_classes))
            self.register_buffer('slow_init', torch.Tensor([True]))


def randomise(net: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics at a scale that keeps activations finite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif (
                name.endswith(('bn1.weight', 'bn2.weight', 'bn3.weight', '1.weight'))
                and t.dim() == 1
            ):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
            else:
                fan = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) / fan**0.5 * (0.1 if t.dim() == 1 else 1))
    return net.eval()


def up(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The references' evaluation: bilinear to the input size with align_corners=True."""
    return F.interpolate(logits, x.shape[-2:], mode='bilinear', align_corners=True)
