"""MomentumTeacher: BatchNorm mode (eval vs the DACS / MIC batch statistics) and the ramp."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from uda.models.teacher import MomentumTeacher


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5))
    bn = net[1]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(3.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    return net


def test_batch_mode_normalises_with_the_batch_and_keeps_running_stats():
    net = _net()
    x = torch.randn(2, 3, 5, 5)
    conv, bn = net[0], net[1]
    y = conv(x).detach()
    by_batch = F.batch_norm(y, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
    by_running = F.batch_norm(
        y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
    )
    batch = MomentumTeacher(net, bn_mode='batch')
    teacher_bn = batch.net[1]
    before = (teacher_bn.running_mean.clone(), int(teacher_bn.num_batches_tracked))
    # Dropout stays off (the reference switches dropout / drop-path off), BN uses the batch.
    torch.testing.assert_close(batch(x), by_batch)
    torch.testing.assert_close(batch(x), batch(x))
    assert torch.equal(teacher_bn.running_mean, before[0])
    assert int(teacher_bn.num_batches_tracked) == before[1]
    assert not teacher_bn.training and teacher_bn.track_running_stats  # restored
    # 'eval' (the default, SAC) uses the running statistics: a different output.
    torch.testing.assert_close(MomentumTeacher(net)(x), by_running)
    assert not torch.allclose(by_batch, by_running)


def test_batch_mode_is_restored_when_the_forward_fails():
    teacher = MomentumTeacher(_net(), bn_mode='batch')
    with pytest.raises(RuntimeError):
        teacher(torch.randn(2, 5, 5, 5))  # wrong channel count
    bn = teacher.net[1]
    assert not bn.training and bn.track_running_stats


def test_ramp_offset_one_makes_the_teacher_the_mean_of_all_students():
    """DACS / MIC (lhoyer/MIC dacs.py:122-135, 316-321): initialised from S0, then updated with
    alpha = min(1 - 1/(i + 1), 0.999) after step i, so the teacher is mean(S0..Si)."""
    student = nn.Linear(1, 1, bias=False)
    for offset, expected in ((1, [0.5, 1.0, 1.5]), (0, [1.0, 1.5, 2.0])):
        student.weight.data.fill_(0.0)
        teacher = MomentumTeacher(student, momentum=0.999, ramp=True, ramp_offset=offset)
        teacher.init_from(student)  # S0 = 0
        for i, e in enumerate(expected, start=1):
            student.weight.data.fill_(float(i))  # S_i = i
            teacher.update(student)
            assert float(teacher.net.weight) == pytest.approx(e)


def test_teacher_rejects_unknown_bn_mode():
    with pytest.raises(ValueError, match="bn_mode='train'"):
        MomentumTeacher(nn.Linear(1, 1), bn_mode='train')
