"""da-sac, ADVENT and AdaptSegNet files: converted with zero missing keys, same logits.

The reference networks below are a minimal re-implementation in plain torch with the
references' parameter names (visinf/da-sac models/deeplabv2.py, valeoai/ADVENT
advent/model/deeplabv2.py, wasidennis/AdaptSegNet model/deeplab_multi.py): Caffe-style
bottlenecks (stride on the 1x1 conv1), a ceil_mode max pool, dilated layer3/4 and summed
``Classifier_Module``s, shrunk to one block per stage for speed. Files are written in each
published layout with random weights and BN statistics.
"""

from __future__ import annotations

import json
import os.path as osp
from typing import Any, Iterator

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F
from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
from torchvision.models.resnet import Bottleneck as TvBottleneck

from uda.models.layouts import ForeignCheckpointError, convert_checkpoint, load_foreign_checkpoint
from uda.models.layouts.deeplabv2 import IMG_MEAN_BGR
from uda.registry import MODELS

DATA = osp.join(osp.dirname(__file__), 'data')
TINY = 'resnet_tiny_bottleneck'  # one bottleneck per stage, registered for these tests


@pytest.fixture(autouse=True)
def tiny_encoder() -> Iterator[None]:
    smp.encoders.encoders[TINY] = dict(
        encoder=ResNetEncoder,
        pretrained_settings={},
        params=dict(
            out_channels=[3, 64, 256, 512, 1024, 2048], block=TvBottleneck, layers=[1, 1, 1, 1]
        ),
    )
    yield
    smp.encoders.encoders.pop(TINY)


# ---- the reference networks (parameter names as in the references) -------------------------


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


def uda_logits(conv: Any, x: torch.Tensor, teacher: bool = False) -> torch.Tensor:
    net = MODELS.build(dict(conv.segmentor)).eval()
    net.load_state_dict(conv.teacher_state_dict if teacher else conv.state_dict, strict=True)
    with torch.no_grad():
        return net(x)


def up(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The references' evaluation: bilinear to the input size with align_corners=True."""
    return F.interpolate(logits, x.shape[-2:], mode='bilinear', align_corners=True)


X = torch.randn(2, 3, 65, 81, generator=torch.Generator().manual_seed(0))  # odd: ceil_mode shows


# ---- da-sac -----------------------------------------------------------------------------------


@pytest.mark.parametrize('teacher', [False, True], ids=['baseline_abn', 'final'])
def test_dasac_converts_with_same_logits(tmp_path: Any, teacher: bool) -> None:
    ref = randomise(RefSAC([1, 1, 1, 1], 5, teacher), 0)
    state = {f'module.{k}': v for k, v in ref.state_dict().items()}  # DDP(SAC)
    path = tmp_path / 'baseline_abn_e040.pth'
    torch.save(dict(model=state, opt={'state': {}}, score=0.41, epoch=40), path)
    conv, line = load_foreign_checkpoint(path)
    assert conv.layout == 'DaSac' and '0 missing, 0 unexpected' in line
    assert conv.segmentor['encoder_name'] == TINY and conv.segmentor['num_classes'] == 5
    assert conv.data_preprocessor['channel_order'] == 'rgb'
    assert conv.data_preprocessor['mean'] == pytest.approx([123.675, 116.28, 103.53])
    assert conv.meta['epoch'] == 40
    with torch.no_grad():
        want = up(ref.backbone.model(X), X)
    torch.testing.assert_close(uda_logits(conv, X), want, atol=1e-5, rtol=1e-5)
    if teacher:
        assert conv.teacher_state_dict is not None and 'teacher' in line
        with torch.no_grad():
            want_t = up(ref.slow_net.model(X), X)
        torch.testing.assert_close(uda_logits(conv, X, teacher=True), want_t, atol=1e-5, rtol=1e-5)
        assert conv.meta['running_conf'] == pytest.approx(ref.running_conf.tolist())
    else:
        assert conv.teacher_state_dict is None


def test_torchvision_style_would_not_reproduce_dasac(tmp_path: Any) -> None:
    """The Caffe-style option is what makes the logits equal (the test can fail)."""
    ref = randomise(RefSAC([1, 1, 1, 1], 5, False), 0)
    path = tmp_path / 'a.pth'
    torch.save(dict(model={f'module.{k}': v for k, v in ref.state_dict().items()}), path)
    conv, _ = load_foreign_checkpoint(path)
    conv.segmentor['encoder_style'] = 'torchvision'
    with torch.no_grad():
        want = up(ref.backbone.model(X), X)
    assert not torch.allclose(uda_logits(conv, X), want, atol=1e-3)


# ---- ADVENT / AdaptSegNet ---------------------------------------------------------------------


@pytest.mark.parametrize('layout', ['advent', 'adaptsegnet'])
def test_multi_level_converts_with_same_logits(tmp_path: Any, layout: str) -> None:
    buggy = layout == 'adaptsegnet'
    ref = randomise(RefResNet([1, 1, 1, 1], 4, multi=True, buggy=buggy), 1)
    path = tmp_path / 'gta2cityscapes.pth'
    torch.save(ref.state_dict(), path)
    conv, line = load_foreign_checkpoint(path, layout)
    assert '0 missing, 0 unexpected' in line
    assert conv.data_preprocessor == dict(
        mean=list(IMG_MEAN_BGR), std=[1.0, 1.0, 1.0], channel_order='bgr'
    )
    with torch.no_grad():
        want_aux, want = ref(X)
    net = MODELS.build(dict(conv.segmentor)).eval()
    net.load_state_dict(conv.state_dict, strict=True)
    with torch.no_grad():
        out = net(X, return_aux=True)
    torch.testing.assert_close(out['logits'], up(want, X), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out['aux_logits'], up(want_aux, X), atol=1e-5, rtol=1e-5)


def test_adaptsegnet_bug_matters_and_auto_refuses_to_guess(tmp_path: Any) -> None:
    ref = randomise(RefResNet([1, 1, 1, 1], 4, multi=True, buggy=True), 2)
    path = tmp_path / 'GTA2Cityscapes_multi.pth'
    torch.save(ref.state_dict(), path)
    with pytest.raises(
        ForeignCheckpointError, match=r'(?s)AdaptSegNet, Advent.*--layout adaptsegnet\|advent'
    ):
        load_foreign_checkpoint(path)
    conv, _ = load_foreign_checkpoint(path, 'advent')  # all four branches: other logits
    with torch.no_grad():
        want = up(ref(X)[1], X)
    assert not torch.allclose(uda_logits(conv, X), want, atol=1e-3)


def test_wrong_layout_and_missing_weights(tmp_path: Any) -> None:
    ref = randomise(RefResNet([1, 1, 1, 1], 4, multi=True), 3)
    path = tmp_path / 'advent.pth'
    torch.save(ref.state_dict(), path)
    with pytest.raises(ForeignCheckpointError, match='not in the DaSac layout'):
        load_foreign_checkpoint(path, 'dasac')
    state = ref.state_dict()
    state.pop('layer4.0.bn2.running_mean')
    state['layer7.conv.weight'] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(
        ForeignCheckpointError, match=r'(?s)Advent layout does not cover.*running_mean.*layer7'
    ):
        load_foreign_checkpoint(path, 'advent')


# ---- full-size R101 manifests (key and shape only) --------------------------------------------


def load_manifest(name: str) -> dict[str, list[int]]:
    with open(osp.join(DATA, f'{name}.json')) as f:
        return json.load(f)


@pytest.mark.parametrize(
    'name, layout, wrap, teacher',
    [
        ('dasac_baseline_abn_r101', 'auto', lambda s: dict(model=s, epoch=40), False),
        ('dasac_final_r101', 'auto', lambda s: dict(model=s, epoch=136), True),
        ('advent_r101', 'advent', lambda s: s, False),
        ('adaptsegnet_r101', 'adaptsegnet', lambda s: s, False),
    ],
)
def test_full_r101_manifests_cover_the_network(
    tmp_path: Any, name: str, layout: str, wrap: Any, teacher: bool
) -> None:
    # Uninitialised tensors of the manifest's shapes, in memory (a 1.3 GB file would only
    # test torch.save).
    state = {k: torch.empty(shape) for k, shape in load_manifest(name).items()}
    conv, report = convert_checkpoint(wrap(state), layout, f'{name}.pth')
    line = report.line()
    assert conv.segmentor['encoder_name'] == 'resnet101' and conv.segmentor['num_classes'] == 19
    assert f'{len(conv.state_dict)} loaded, 0 missing, 0 unexpected' in line
    assert (conv.teacher_state_dict is not None) == teacher


@pytest.mark.parametrize(
    'name, prefix',
    [
        ('dasac_baseline_abn_r101', 'module.backbone.model.'),
        ('dasac_final_r101', 'module.slow_net.model.'),
        ('advent_r101', ''),
        ('adaptsegnet_r101', ''),
    ],
)
def test_manifest_backbones_are_resnet101(name: str, prefix: str) -> None:
    """The manifests' backbones are torchvision's ResNet-101 keys and shapes (the Caffe port
    keeps the names), plus the 19-class ASPP heads of each reference."""
    import torchvision

    with torch.device('meta'):
        tv = torchvision.models.resnet101().state_dict()
    want = {k: list(v.shape) for k, v in tv.items() if not k.startswith('fc.')}
    manifest = load_manifest(name)
    got = {k[len(prefix) :]: v for k, v in manifest.items() if k.startswith(prefix)}
    heads = {k: v for k, v in got.items() if k.startswith(('layer5.', 'layer6.'))}
    assert {k: v for k, v in got.items() if k not in heads} == want
    in_ch = {'layer5': 1024 if 'dasac' not in name else 2048, 'layer6': 2048}
    assert heads == {
        f'{h}.conv2d_list.{i}.{p}': [19, in_ch[h], 3, 3] if p == 'weight' else [19]
        for h in (['layer5'] if 'dasac' in name else ['layer5', 'layer6'])
        for i in range(4)
        for p in ('weight', 'bias')
    }
