"""DenseCL: dense InfoNCE by hand, matching by backbone similarity, both queues."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from uda.pretrain import batch_norm_batch_stats, dense_info_nce
from uda.registry import MODELS

SEG = dict(type='SMPSegmentor', arch='Unet', encoder_name='resnet18', num_classes=11)
PRE = dict(type='SegDataPreprocessor', size_divisor=32)


def test_dense_info_nce_by_hand():
    """Two locations, D = 2, one negative (0, 1), T = 1:
    location 1: q = (1, 0), k = (1, 0): logits (1, 0) -> -log(e / (e + 1));
    location 2: q = (0, 1), k = (1, 0): logits (0, 1) -> -log(1 / (1 + e))."""
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    neg = torch.tensor([[0.0, 1.0]])
    want = (-math.log(math.e / (math.e + 1)) - math.log(1 / (1 + math.e))) / 2
    assert dense_info_nce(q, k, neg, 1.0).item() == pytest.approx(want, rel=1e-6)
    # Temperature divides the logits.
    want_half = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(1 / (1 + math.e**2))) / 2
    assert dense_info_nce(q, k, neg, 0.5).item() == pytest.approx(want_half, rel=1e-6)


def build(**kw):
    cfg = dict(type='DenseCL', segmentor=SEG, queue_size=8, data_preprocessor=PRE)
    cfg.update(kw)
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(cfg)
    model.teacher.init_from(model.student)
    return model


def batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)

    def imgs():
        return [
            torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g) for _ in range(b)
        ]

    return {'images.query': dict(inputs=imgs()), 'images.key': dict(inputs=imgs())}


def test_network_outputs():
    model = build(proj_dim=16)
    glob, grid, pooled, feat = model.student(torch.randn(2, 3, 64, 64))
    # 64 px -> 2 x 2 locations of the last stage (stride 32), 512 channels.
    assert glob.shape == (2, 16) and grid.shape == (2, 4, 16) and pooled.shape == (2, 16)
    assert feat.shape == (2, 4, 512)
    assert torch.allclose(pooled, grid.mean(1))


def test_step_fills_both_queues_and_weights_the_losses():
    model = build(loss_lambda=0.3)
    data = batch()
    with torch.no_grad():
        x = model.data_preprocessor(data, True)['inputs']['images.key']
        with batch_norm_batch_stats(model.teacher.net):
            k, _, k_pooled, _ = model.teacher(x)
    ow = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    logs = model.train_step(data, ow)
    assert logs['loss'].item() == pytest.approx(
        (logs['densecl.loss_global'] + logs['densecl.loss_dense']).item()
    )
    assert torch.allclose(model.criterion.memory_bank.bank[:2], F.normalize(k, dim=1), atol=1e-5)
    assert torch.allclose(model.dense_queue.bank[:2], F.normalize(k_pooled, dim=1), atol=1e-5)
    assert int(model.dense_queue.bank_ptr) == 2
    sd = model.state_dict()
    assert 'dense_queue.bank' in sd and 'criterion.memory_bank.bank' in sd


def test_matching_uses_the_most_similar_key_location():
    """With identical views the most similar key location of each query location is itself,
    so the positive logits are the grid's own self-similarities (1 after normalisation)."""
    from lightly.models.utils import select_most_similar

    feat = torch.randn(1, 4, 8)
    grid = F.normalize(torch.randn(1, 4, 3), dim=-1)
    assert torch.equal(select_most_similar(feat, feat, grid), grid)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.equal(select_most_similar(feat, feat[:, perm], grid[:, perm]), grid)


def test_bad_lambda():
    with pytest.raises(ValueError, match='loss_lambda'):
        build(loss_lambda=1.5)
