import torch
from mmengine.optim import OptimWrapper

from tests.conftest import toy_batch
from uda.registry import MODELS


def _model(target_only=True):
    return MODELS.build(dict(
        type='Adapter', segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
        terms=[dict(type='AdaptiveBN', target_only_stats=target_only), dict(type='SourceCE')]))


def test_adaptive_bn_runs_last_and_stats_follow_target():
    torch.manual_seed(0)
    model = _model()
    assert type(model.terms[-1]).__name__ == 'AdaptiveBN'  # sorted by `order`
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))  # weights fixed
    batch = toy_batch(seed=0)
    # Make source and target statistics very different.
    for img in batch['target']['inputs']:
        img.zero_()
    bn = model.student.bn
    for _ in range(30):
        model.train_step(batch, wrapper)
    stats_target_only = bn.running_mean.clone()
    # Expected: an EMA (momentum 0.1, from 0) over target batch means only, 30 updates.
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        feat = model.student.conv(data['inputs']['target'])
    target_mean = feat.mean((0, 2, 3))
    assert torch.allclose(stats_target_only, (1 - 0.9 ** 30) * target_mean, atol=2e-3)


def test_without_restore_source_mixes_in():
    torch.manual_seed(0)
    model = _model(target_only=False)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    batch = toy_batch(seed=0)
    for img in batch['target']['inputs']:
        img.zero_()
    for _ in range(30):
        model.train_step(batch, wrapper)
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        target_mean = model.student.conv(data['inputs']['target']).mean((0, 2, 3))
    assert not torch.allclose(model.student.bn.running_mean, (1 - 0.9 ** 30) * target_mean,
                              atol=1e-2)


def test_adaptive_bn_gives_no_gradient():
    model = _model()
    model.train()
    out = model.terms[-1](model, model.data_preprocessor(toy_batch(), True)['inputs'], {})
    assert all(not v.requires_grad for v in out.values())


def _minent_model(with_abn=True):
    terms = [dict(type='SourceCE'), dict(type='MinEnt', weight=1.0, aux_weight=0)]
    return MODELS.build(dict(
        type='Adapter', segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
        terms=terms + ([dict(type='AdaptiveBN')] if with_abn else [])))


def test_stats_stay_target_only_with_a_gradient_target_forward():
    """MinEnt (like AdvEnt) forwards the target branch with gradient in train mode, which also
    updates BN statistics; AdaptiveBN restores its own before its forward, so they remain an
    EMA over its target forwards only."""
    batch = toy_batch(seed=0)
    for img in batch['target']['inputs']:
        img.zero_()  # target statistics far from the source ones
    stats = {}
    for with_abn in (True, False):
        torch.manual_seed(0)
        model = _minent_model(with_abn)
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))  # weights fixed
        for _ in range(30):
            log = model.train_step(batch, wrapper)
        assert log['tgt.loss_ent'] > 0
        assert model.student.conv.weight.grad is None  # zeroed after the (lr 0) step
        stats[with_abn] = model.student.bn.running_mean.clone()
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        s, t = (model.student.conv(data['inputs'][b]).mean((0, 2, 3)) for b in ('source', 'target'))
    # BN momentum 0.1 from 0. Step 1 (nothing saved yet): source, MinEnt's target, then
    # AdaptiveBN's target forward: 0.081 s + 0.19 t. Then 29 AdaptiveBN updates only.
    expected = 0.9 ** 29 * (0.081 * s + 0.19 * t) + (1 - 0.9 ** 29) * t
    assert torch.allclose(stats[True], expected, atol=1e-5)
    # Without AdaptiveBN every step also mixes in the source statistics.
    assert not torch.allclose(stats[False], expected, atol=1e-2)
