"""da-sac, ADVENT and AdaptSegNet files: converted with zero missing keys, same logits.

The reference networks (reference_deeplabv2.py here) re-implement the references in plain
torch with their parameter names, shrunk to one block per stage for speed. Files are written
in each published layout with random weights and BN statistics; the R101 manifests (data/)
check the full-size key sets.
"""

from __future__ import annotations

import json
import os.path as osp
from typing import Any, Iterator

import pytest
import torch

from tests.models.layouts.reference_deeplabv2 import (
    TINY,
    RefResNet,
    RefSAC,
    randomise,
    tiny_bottleneck_encoder,
    up,
)
from uda.models.layouts import ForeignCheckpointError, convert_checkpoint, load_foreign_checkpoint
from uda.models.layouts.deeplabv2 import IMG_MEAN_BGR
from uda.registry import MODELS

DATA = osp.join(osp.dirname(__file__), 'data')


@pytest.fixture(autouse=True)
def tiny_encoder() -> Iterator[None]:
    with tiny_bottleneck_encoder():
        yield


def uda_logits(conv: Any, x: torch.Tensor, teacher: bool = False) -> torch.Tensor:
    net = MODELS.build(dict(conv.segmentor)).eval()
    net.load_state_dict(conv.teacher_state_dict if teacher else conv.state_dict, strict=True)
    with torch.no_grad():
        return net(x)


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
        mean=list(IMG_MEAN_BGR), std=[1.0, 1.0, 1.0], channel_order='bgr', size_divisor=1
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
