"""VAT: perturbation norm and direction, no parameter gradient, BN statistics untouched."""

import math

import pytest
import torch
import torch.nn as nn

from tests.conftest import toy_batch
from uda.losses import pixel_kl
from uda.methods.virtual_adversarial import adversarial_perturbation
from uda.registry import MODELS


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 5, 3, padding=1))


def test_pixel_kl_golden():
    p = torch.zeros(1, 2, 1, 2)  # (0.5, 0.5)
    q = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1).expand(1, 2, 1, 2)  # (0.25, 0.75)
    kl = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert pixel_kl(p, q).item() == pytest.approx(kl, rel=1e-5)
    assert pixel_kl(p, p).item() == 0.0
    valid = torch.tensor([[[True, False]]])
    assert pixel_kl(p, q, valid).item() == pytest.approx(kl, rel=1e-5)


def test_perturbation_norm_is_eps_per_image_and_padding_is_untouched():
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    valid = torch.ones(2, 16, 16, dtype=torch.bool)
    valid[1, 8:] = False
    r = adversarial_perturbation(net, x, net(x), eps=2.5, valid=valid)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((2,), 2.5), rtol=1e-5)
    assert r[1, :, 8:].abs().max() == 0


def test_adversarial_direction_beats_random_and_leaves_parameters_alone():
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    clean = net(x).detach()
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        r = adversarial_perturbation(net, x, clean, eps=2.0, generator=g)
        rnd = torch.randn(x.shape, generator=g)
        rnd = 2.0 * rnd / rnd.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        with torch.no_grad():
            assert pixel_kl(clean, net(x + r)) > 1.2 * pixel_kl(clean, net(x + rnd))
    assert all(p.grad is None for p in net.parameters())  # torch.autograd.grad w.r.t. d only


def test_term_keeps_bn_statistics_and_trains_through_the_adversarial_forward_only():
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(vat=dict(type='VirtualAdversarial', eps=4.0)),
            bn_policy='train',  # every forward would update the running statistics
        )
    )
    model.train()
    data = model.data_preprocessor(toy_batch(), True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    ctx.student('target')  # the clean forward: updates them under 'train'
    bn = model.student.bn
    stats = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    out = model.terms['vat'](ctx)
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert torch.equal(bn.num_batches_tracked, stats[2]) and bn.momentum == 0.1
    assert ctx.counts['student'] == 3  # clean (cached) + power iteration + adversarial
    assert all(p.grad is None for p in model.student.parameters())
    out['loss'].backward()
    assert model.student.conv.weight.grad is not None
    assert out['r_norm'].item() == pytest.approx(4.0, rel=1e-4)


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match='power_iters >= 1'):
        MODELS.build(
            dict(
                type='Adapter',
                segmentor=dict(type='ToySegmentor'),
                terms=dict(vat=dict(type='VirtualAdversarial', power_iters=0)),
            )
        )
