"""MoCo v2: InfoNCE against the queue, queue update, key encoder, checkpointed queue."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from uda.pretrain import batch_norm_batch_stats
from uda.pretrain.moco import contrast_accuracy
from uda.registry import MODELS

SEG = dict(type='SMPSegmentor', arch='Unet', encoder_name='resnet18', num_classes=11)
PRE = dict(type='SegDataPreprocessor', size_divisor=32)


def build(queue_size: int = 8, **kw):
    cfg = dict(type='MoCoV2', segmentor=SEG, queue_size=queue_size, data_preprocessor=PRE)
    cfg.update(kw)
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(cfg)
    model.teacher.init_from(model.student)  # EMATeacherHook does this at iteration 0
    return model


def batch(b: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def imgs():
        return [
            torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g) for _ in range(b)
        ]

    return {'images.query': dict(inputs=imgs()), 'images.key': dict(inputs=imgs())}


def test_infonce_against_the_queue_by_hand():
    """q = (1, 0), k = (0.6, 0.8), queue [(1, 0), (0, 1)], T = 0.5:
    logits = [0.6, 1, 0] / 0.5 = [1.2, 2, 0]; loss = -log(e^1.2 / (e^1.2 + e^2 + 1))."""
    model = build(queue_size=2, proj_dim=2, temperature=0.5)
    model.criterion.memory_bank.bank.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    q = torch.tensor([[2.0, 0.0]], requires_grad=True)  # normalised inside the loss
    k = torch.tensor([[3.0, 4.0]])
    loss = model.criterion(q, k)
    e = torch.tensor([1.2, 2.0, 0.0]).exp()
    assert loss.item() == pytest.approx(-torch.log(e[0] / e.sum()).item(), rel=1e-6)
    # The normalised key entered the queue at the pointer (oldest first), after the loss.
    assert torch.allclose(model.queue[0], torch.tensor([0.6, 0.8]))
    assert int(model.criterion.memory_bank.bank_ptr) == 1


def test_queue_fills_in_order_and_wraps():
    model = build(queue_size=3, proj_dim=2)
    bank = model.criterion.memory_bank
    before = bank.bank.clone()
    keys = [F.normalize(torch.randn(2, 2), dim=1) for _ in range(2)]
    q = torch.randn(2, 2, requires_grad=True)
    model.criterion(q, keys[0])
    assert torch.allclose(bank.bank[:2], keys[0]) and torch.equal(bank.bank[2], before[2])
    assert int(bank.bank_ptr) == 2
    model.criterion(q, keys[1])
    # The third slot takes the first key of the batch; the pointer wraps to the oldest slot.
    assert torch.allclose(bank.bank[2], keys[1][0]) and int(bank.bank_ptr) == 0
    # Without gradient (evaluation) the queue is left alone.
    model.criterion(q.detach(), keys[0])
    assert torch.allclose(bank.bank[2], keys[1][0]) and int(bank.bank_ptr) == 0


def test_train_step_enqueues_the_key_encoders_keys():
    model = build(queue_size=8)
    data = batch()
    with torch.no_grad():
        x = model.data_preprocessor(data, True)['inputs']['images.key']
        with batch_norm_batch_stats(model.teacher.net):
            expected = F.normalize(model.teacher(x), dim=1)
    old = model.queue.clone()
    ow = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    logs = model.train_step(data, ow)
    assert set(logs) >= {'loss', 'moco.loss_infonce', 'moco.acc', 'moco.emb_std', 'moco.momentum'}
    assert torch.allclose(model.queue[:2], expected, atol=1e-5)
    assert torch.equal(model.queue[2:], old[2:])
    assert logs['moco.momentum'].item() == pytest.approx(0.999)


def test_only_the_query_encoder_learns():
    model = build()
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student_before = model.student.encoder.conv1.weight.detach().clone()
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step(batch(), ow)
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert not torch.equal(model.student.encoder.conv1.weight, student_before)
    after = model.teacher.state_dict()
    params = {n for n, _ in model.teacher.named_parameters()}
    assert all(torch.equal(after[n], teacher_before[n]) for n in params)


def test_momentum_update_of_the_key_encoder():
    model = build(momentum=0.9)
    t0 = model.teacher.net.head.layers[0].weight.clone()
    ow = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.5))
    model.train_step(batch(), ow)
    s1 = model.student.head.layers[0].weight.detach()
    assert not torch.equal(s1, t0)
    model.teacher.update(model.student)  # what EMATeacherHook does after the step
    assert torch.allclose(model.teacher.net.head.layers[0].weight, 0.9 * t0 + 0.1 * s1)


def test_queue_and_pointer_are_saved_and_restored():
    model = build(queue_size=8)
    model.train_step(batch(), OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1)))
    sd = model.state_dict()
    assert 'criterion.memory_bank.bank' in sd and 'criterion.memory_bank.bank_ptr' in sd
    fresh = build(queue_size=8)
    assert not torch.equal(fresh.queue, model.queue)
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.queue, model.queue)
    assert int(fresh.criterion.memory_bank.bank_ptr) == 2


def test_contrast_accuracy_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.1], [1.0, 0.0]])  # first positive wins, second loses to (0, 1)
    negatives = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    assert contrast_accuracy(q, k, negatives).item() == pytest.approx(0.5)


def test_bad_queue_size():
    with pytest.raises(ValueError, match='queue_size=0'):
        build(queue_size=0)
