"""Shared pretraining parts: collapse diagnostic, batch-statistics BN, encoder, views."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope

from uda.augment import MOCOV2_VIEW
from uda.pretrain import batch_norm_batch_stats, build_encoder, embedding_std
from uda.registry import MODELS

SEG = dict(type='SMPSegmentor', arch='Unet', encoder_name='resnet18', num_classes=11)
PRE = dict(type='SegDataPreprocessor', size_divisor=32)


def test_embedding_std_is_zero_for_collapse_and_about_one_when_spread():
    collapsed = torch.ones(8, 16) * torch.randn(1, 16)
    assert embedding_std(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    spread = torch.randn(4096, 64)
    assert embedding_std(spread).item() == pytest.approx(1.0, abs=0.02)
    # Two opposite unit vectors along one axis of D=2: std of that axis is sqrt(2), the other
    # 0; mean sqrt(2)/2, times sqrt(2) = 1.
    two = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert embedding_std(two).item() == pytest.approx(1.0)


def test_batch_norm_batch_stats_normalises_by_the_batch_and_restores_eval():
    bn = nn.BatchNorm1d(3).eval()
    bn.running_mean.fill_(5.0)
    x = torch.randn(6, 3) + 10
    with torch.no_grad(), batch_norm_batch_stats(bn):
        y = bn(x)
    assert not bn.training
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)  # batch mean, not running
    eval_y = bn(x)
    assert eval_y.mean() > 1.0  # eval mode again: running statistics


def test_build_encoder_is_the_segmentors_encoder():
    with DefaultScope.overwrite_default_scope('uda'):
        encoder, meta = build_encoder(SEG)
        seg = MODELS.build(SEG)
    assert list(encoder.state_dict()) == list(seg.net.encoder.state_dict())
    assert meta['encoder_name'] == 'resnet18' and meta['out_channels'][-1] == 512


def test_build_encoder_rejects_a_network_without_encoder():
    with (
        DefaultScope.overwrite_default_scope('uda'),
        pytest.raises(ValueError, match='net.encoder'),
    ):
        build_encoder(nn.Conv2d(3, 3, 1))


def _moco(**kw):
    cfg = dict(
        type='MoCoV2',
        segmentor=SEG,
        queue_size=8,
        data_preprocessor=PRE,
        photometric={'images.query': MOCOV2_VIEW, 'images.key': MOCOV2_VIEW},
    )
    cfg.update(kw)
    with DefaultScope.overwrite_default_scope('uda'):
        return MODELS.build(cfg)


def test_photometric_view_changes_each_image_differently():
    model = _moco()
    torch.manual_seed(0)
    x = model.data_preprocessor.normalize(torch.rand(4, 3, 32, 32) * 255)
    inputs = {'images.query': x, 'images.key': x}
    a, b = model.view(inputs, 'images.query'), model.view(inputs, 'images.query')
    assert a.shape == x.shape and not torch.allclose(a, x) and not torch.allclose(a, b)
    # Values stay in the normalised range of [0, 255] pixels.
    rgb = model.data_preprocessor.denormalize(a)
    assert rgb.min() >= -1e-3 and rgb.max() <= 255 + 1e-3


def test_missing_view_names_the_views():
    model = _moco()
    with pytest.raises(KeyError, match="no view 'images.key'"):
        model.view({'images.query': torch.zeros(1, 3, 32, 32)}, 'images.key')


def test_bad_photometric_entry_names_the_key():
    with pytest.raises(ValueError, match=r"photometric\['images.query'\]"):
        _moco(photometric={'images.query': 0.5})


def test_only_loss_mode():
    with pytest.raises(ValueError, match='only trains'):
        _moco()({}, mode='predict')


def test_encoder_state_dict_is_bare_and_detached():
    model = _moco()
    sd = model.encoder_state_dict()
    assert 'conv1.weight' in sd and not any(k.startswith(('encoder.', 'student.')) for k in sd)
    assert all(not v.requires_grad for v in sd.values())
    assert math.isclose(
        float(sd['conv1.weight'].sum()), float(model.student.encoder.conv1.weight.detach().sum())
    )
