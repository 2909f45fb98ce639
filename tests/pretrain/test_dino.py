"""DINO: temperature and momentum schedules, weight-normalised head, multi-crop step."""

from __future__ import annotations

import copy

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from uda.models.teacher import MomentumTeacher
from uda.pretrain import teacher_temperature, weight_normed_linear
from uda.registry import MODELS

SEG = dict(type='SMPSegmentor', arch='Unet', encoder_name='resnet18', num_classes=11)
PRE = dict(type='SegDataPreprocessor', size_divisor=32)


def build(**kw):
    cfg = dict(
        type='DINO',
        segmentor=SEG,
        out_dim=16,
        hidden_dim=32,
        bottleneck_dim=8,
        momentum_iters=10,
        data_preprocessor=PRE,
    )
    cfg.update(kw)
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(cfg)
    model.teacher.init_from(model.student)
    return model


def batch(sizes: dict, b: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        name: dict(
            inputs=[
                torch.randint(0, 256, (3, s, s), dtype=torch.uint8, generator=g) for _ in range(b)
            ]
        )
        for name, s in sizes.items()
    }


def test_teacher_temperature_warmup():
    assert teacher_temperature(0, 0.04, 0.07, 0) == 0.07
    assert teacher_temperature(0, 0.04, 0.07, 4) == pytest.approx(0.04)
    assert teacher_temperature(3, 0.04, 0.07, 4) == pytest.approx(0.07)  # linspace end
    assert teacher_temperature(1, 0.04, 0.07, 4) == pytest.approx(0.05)
    assert teacher_temperature(10, 0.04, 0.07, 4) == 0.07


def test_cosine_momentum_schedule():
    t = MomentumTeacher(torch.nn.Linear(1, 1), momentum=0.996, momentum_end=1.0, cosine_updates=4)
    t.init_from(torch.nn.Linear(1, 1))
    ms = []
    for _ in range(6):
        ms.append(t.momentum_now())
        t.update(torch.nn.Linear(1, 1))
    # 1 - 0.004 * (1 + cos(pi t / 4)) / 2 for t = 0..4, then constant.
    want = [0.996, 1 - 0.004 * (1 + 2**-0.5) / 2, 0.998, 1 - 0.004 * (1 - 2**-0.5) / 2, 1.0, 1.0]
    assert ms == pytest.approx(want)
    with pytest.raises(ValueError, match='cosine schedule'):
        MomentumTeacher(torch.nn.Linear(1, 1), momentum_end=None, cosine_updates=3)


def test_weight_normed_last_layer_copies_and_keeps_unit_norms():
    layer = weight_normed_linear(8, 5, fixed_norm=True)
    layer(torch.randn(2, 8))
    clone = copy.deepcopy(layer)  # the momentum teacher's copy
    assert torch.allclose(clone.weight.norm(dim=1), torch.ones(5))
    assert not layer.parametrizations.weight.original0.requires_grad
    assert layer.parametrizations.weight.original1.requires_grad


def test_step_with_local_views_and_solarisation():
    model = build(
        local_views=('images.local1',),
        solarize={'images.global2': 1.0},
        freeze_last_layer_iters=0,
    )
    data = batch({'images.global1': 64, 'images.global2': 64, 'images.local1': 32})
    ow = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    logs = model.train_step(data, ow)
    assert torch.isfinite(logs['dino.loss_distill'])
    assert logs['dino.teacher_temp'].item() == pytest.approx(0.04)
    # The centre moved towards the teacher outputs (EMA 0.9 from zero).
    assert model.criterion.center.abs().sum() > 0


def test_solarisation_inverts_bright_pixels():
    model = build(solarize={'images.global2': 1.0})
    x = torch.tensor([0.2, 0.8]).view(1, 1, 1, 2).expand(1, 3, 2, 2) * 255
    norm = model.data_preprocessor.normalize(x)
    out = model.dino_view({'images.global2': norm}, 'images.global2')
    rgb = model.data_preprocessor.denormalize(out) / 255
    assert torch.allclose(rgb[0, :, :, 0], torch.full((3, 2), 0.2), atol=1e-5)
    assert torch.allclose(rgb[0, :, :, 1], torch.full((3, 2), 0.2), atol=1e-5)  # 1 - 0.8


def test_frozen_last_layer_gets_no_update():
    model = build(freeze_last_layer_iters=5)
    before = model.student.head.last_layer.parametrizations.weight.original1.clone()
    ow = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1, weight_decay=0.1))
    model.train_step(batch({'images.global1': 32, 'images.global2': 32}), ow)
    after = model.student.head.last_layer.parametrizations.weight.original1
    assert torch.equal(before, after)
    assert model.student.head.layers[0].weight.grad is None  # zeroed after the step
    model2 = build(freeze_last_layer_iters=0)
    before2 = model2.student.head.last_layer.parametrizations.weight.original1.clone()
    ow2 = OptimWrapper(torch.optim.SGD(model2.student.parameters(), lr=0.1, weight_decay=0.1))
    model2.train_step(batch({'images.global1': 32, 'images.global2': 32}), ow2)
    assert not torch.equal(
        before2, model2.student.head.last_layer.parametrizations.weight.original1
    )


def test_needs_two_views():
    with pytest.raises(ValueError, match='at least one global view'):
        build(global_views=('images.global1',), local_views=())
