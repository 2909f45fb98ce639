"""SAC: thresholds, class weights and loss (golden values); the term's teacher and BN rules."""
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from tests.conftest import toy_batch
from uda.methods.sac import (adaptive_thresholds, focal_class_weights, pseudo_labels,
                             sac_loss)
from uda.registry import MODELS


def _probs():
    # 1 image, 3 classes, 1 x 4 pixels; columns are pixels.
    p = torch.tensor([[0.9, 0.6, 0.2, 0.3],
                      [0.05, 0.3, 0.7, 0.3],
                      [0.05, 0.1, 0.1, 0.4]])
    return p.view(1, 3, 1, 4)


def test_threshold_formula_golden():
    prior = torch.tensor([0.5, 1e-3, 0.0])
    covered = torch.ones(1, 1, 4, dtype=torch.bool)
    thr = adaptive_thresholds(_probs(), covered, prior, lower=0.2, upper=0.75, beta=1e-3)
    expected = torch.tensor([[max(0.2, 0.9 * 0.75 * (1 - math.exp(-500))),
                              max(0.2, 0.7 * 0.75 * (1 - math.exp(-1))),  # 0.33187
                              0.2]])  # prior 0: the lower bound
    assert torch.allclose(thr, expected, atol=1e-6)
    labels, conf = pseudo_labels(_probs(), covered, thr)
    assert labels.tolist() == [[[0, 255, 1, 2]]]  # 0.6 < 0.675 is dropped
    assert torch.allclose(conf, torch.tensor([[[0.9, 0.6, 0.7, 0.4]]]))


def test_uncovered_pixels_neither_set_peaks_nor_get_labels():
    prior = torch.tensor([0.5, 1e-3, 0.0])
    covered = torch.tensor([[[False, True, True, True]]])
    thr = adaptive_thresholds(_probs(), covered, prior)
    assert thr[0, 0] == pytest.approx(0.6 * 0.75, abs=1e-6)  # peak from pixel 1 only
    labels, _ = pseudo_labels(_probs(), covered, thr)
    assert labels.tolist() == [[[255, 0, 1, 2]]]


def test_focal_class_weights_golden():
    w = focal_class_weights(torch.tensor([0.5, 0.1, 0.0, 1.2]), 3.0)
    assert torch.allclose(w, torch.tensor([0.125, 0.729, 1.0, 0.0]))


def test_sac_loss_golden():
    logits = torch.zeros(1, 3, 1, 4)  # CE = ln 3 everywhere
    labels = torch.tensor([[[0, 255, 1, 2]]])
    conf = torch.tensor([[[0.9, 0.6, 0.7, 0.4]]])
    prior = torch.tensor([0.5, 0.1, 0.0])
    loss = sac_loss(logits, labels, conf, prior, 3.0)
    expected = (0.125 * 0.9 + 0.0 + 0.729 * 0.7 + 1.0 * 0.4) * math.log(3) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def _adapter(**teacher):
    return MODELS.build(dict(
        type='Adapter', segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
        teacher=dict(momentum=0.99, interval=1, **teacher),
        terms=[dict(type='SourceCE'),
               dict(type='SACSelfTraining', num_views=2, log_per_class=False),
               dict(type='AdaptiveBN', until_self_training=True)]))


def test_term_order_prior_buffer_and_teacher_mode():
    model = _adapter()
    assert type(model.terms[0]).__name__ == 'SACSelfTraining'  # runs first: freezes BN
    assert model.terms[0].class_prior.shape == (19,)
    model.train()
    assert not model.teacher.training and model.student.training
    assert model.segmentor_for('teacher') is model.teacher
    assert all(not p.requires_grad for p in model.teacher.parameters())


def test_teacher_gets_no_gradient_and_student_bn_stays_frozen():
    torch.manual_seed(0)
    model = _adapter()
    model.train()
    model.init_teacher()
    wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    bn = model.student.bn
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    conv = model.student.conv.weight.clone()
    for step in range(3):
        log_vars = model.train_step(toy_batch(seed=step), wrapper)
        assert 'tgt.loss_sac' in log_vars and math.isfinite(log_vars['tgt.loss_sac'])
        assert 0 <= log_vars['tgt.pseudo_ratio'] <= 1
        assert 'tgt.bn_mean_abs' not in log_vars  # ABN stopped with self-training
    assert bn.training and bn.momentum == 0.0  # batch statistics, frozen running statistics
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert not torch.equal(model.student.conv.weight, conv)  # the student trains
    for p in model.teacher.parameters():
        assert p.grad is None
    for k, v in model.teacher.state_dict().items():  # no update without the hook
        assert torch.equal(v, teacher[k]), k
    assert model.terms[0].prior_updates.item() == 3
    assert torch.allclose(model.terms[0].class_prior.sum(), torch.tensor(1.0), atol=1e-4)
    panels = model.terms[0].vis_panels()
    assert panels['sac_pseudo_labels'].shape == (32, 32)
    assert panels['sac_view'].dtype == torch.uint8 and panels['sac_view'].shape[0] == 3


def test_eval_mode_bn_freeze():
    model = MODELS.build(dict(
        type='Adapter', segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
        terms=[dict(type='SourceCE'), dict(type='SACSelfTraining', num_views=2,
                                           freeze_student_bn='eval')]))
    model.train()
    model.init_teacher()
    stats = model.student.bn.running_mean.clone()
    model.train_step(toy_batch(), OptimWrapper(torch.optim.SGD(model.student.parameters(),
                                                               lr=0.1)))
    assert not model.student.bn.training
    assert torch.equal(model.student.bn.running_mean, stats)
    with pytest.raises(ValueError, match='freeze_student_bn'):
        MODELS.build(dict(type='Adapter', segmentor=dict(type='ToySegmentor'),
                          terms=[dict(type='SACSelfTraining', freeze_student_bn=True)]))


def test_warm_up_returns_nothing_and_missing_hook_is_reported():
    model = _adapter(start_iter=5)
    model.train()
    data = model.data_preprocessor(toy_batch(), True)
    hub = MessageHub.get_current_instance()
    old = hub.get_info('iter')
    try:
        hub.update_info('iter', 2)
        assert model.terms[0](model, data['inputs'], data['data_samples']) == {}
        hub.update_info('iter', 5)
        with pytest.raises(RuntimeError, match='EMATeacherHook'):
            model.terms[0](model, data['inputs'], data['data_samples'])
    finally:
        hub.update_info('iter', old)


def test_num_images_limits_the_target_views():
    model = MODELS.build(dict(
        type='Adapter', segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
        terms=[dict(type='SACSelfTraining', num_images=1, num_views=3)]))
    model.init_teacher()
    calls = []
    model.teacher.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    data = model.data_preprocessor(toy_batch(batch=4), True)
    model.terms[0](model, data['inputs'], data['data_samples'])
    assert calls == [3]
