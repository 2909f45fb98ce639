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
