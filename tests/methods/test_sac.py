"""SAC: thresholds, class weights and loss (golden values); the term's teacher and BN rules."""

import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from tests.conftest import toy_batch
from uda.losses import focal_class_weights, sac_loss
from uda.methods.sac import adaptive_thresholds, pseudo_labels
from uda.registry import MODELS


def _probs():
    # 1 image, 3 classes, 1 x 4 pixels; columns are pixels.
    p = torch.tensor([[0.9, 0.6, 0.2, 0.3], [0.05, 0.3, 0.7, 0.3], [0.05, 0.1, 0.1, 0.4]])
    return p.view(1, 3, 1, 4)


def test_threshold_formula_golden():
    prior = torch.tensor([0.5, 1e-3, 0.0])
    covered = torch.ones(1, 1, 4, dtype=torch.bool)
    thr = adaptive_thresholds(_probs(), covered, prior, lower=0.2, upper=0.75, beta=1e-3)
    expected = torch.tensor(
        [
            [
                max(0.2, 0.9 * 0.75 * (1 - math.exp(-500))),
                max(0.2, 0.7 * 0.75 * (1 - math.exp(-1))),  # 0.33187
                0.2,
            ]
        ]
    )  # prior 0: the lower bound
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


def _adapter(
    bn_policy='frozen_stats', num_images=None, num_views=2, views_per_pass=None, **teacher
):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            teacher=dict(momentum=0.99, interval=1, **teacher),
            labellers=dict(
                sac=dict(type='SACLabeller', num_views=num_views, num_images=num_images)
            ),
            terms=dict(
                src=dict(type='SourceCE'),
                sac=dict(
                    type='SACSelfTraining', log_per_class=False, views_per_pass=views_per_pass
                ),
            ),
            bn_policy=bn_policy,
        )
    )


def _ctx(model, batch, it=0):
    data = model.data_preprocessor(batch, True)
    return model.make_context(data['inputs'], data['data_samples'], iteration=it)


def test_prior_buffer_starts_at_beta_and_teacher_stays_in_eval_mode():
    model = _adapter()
    prior = model.labellers['sac'].class_prior
    assert prior.shape == (19,) and torch.all(prior == 1e-3)  # as da-sac's running_conf
    model.train()
    assert not model.teacher.training and model.student.training
    assert model.segmentor_for('teacher') is model.teacher.net
    assert all(not p.requires_grad for p in model.teacher.parameters())


def test_prior_update_copies_new_classes_then_follows_the_ema():
    lab = _adapter().labellers['sac']
    probs = torch.zeros(1, 19, 1, 2)
    probs[0, 0] = 1.0  # only class 0 present
    lab.update_prior(probs, torch.ones(1, 1, 1, 2))
    # Class 0: copied (1.0), then 0.99 * 1 + 0.01 * 1; class 1: 0.99 * 1e-3 + 0.
    assert lab.class_prior[0].item() == pytest.approx(1.0)
    assert lab.class_prior[1].item() == pytest.approx(0.99e-3)
    probs[0, 0], probs[0, 1] = 0.5, 0.5
    lab.update_prior(probs, torch.ones(1, 1, 1, 2))
    assert lab.class_prior[0].item() == pytest.approx(0.995)
    assert lab.class_prior[1].item() == pytest.approx(0.99 * 0.99e-3 + 0.005)


def test_teacher_gets_no_gradient_and_student_bn_stays_frozen():
    torch.manual_seed(0)
    model = _adapter()
    model.train()
    model.teacher.init_from(model.student)
    wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
    bn = model.student.bn
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    conv = model.student.conv.weight.clone()
    for step in range(3):
        log_vars = model.train_step(toy_batch(seed=step), wrapper)
        assert 'sac.loss' in log_vars and math.isfinite(log_vars['sac.loss'])
        assert 0 <= log_vars['sac.pseudo_ratio'] <= 1
    assert bn.training  # batch statistics in forwards, frozen running statistics
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert not torch.equal(model.student.conv.weight, conv)  # the student trains
    for p in model.teacher.parameters():
        assert p.grad is None
    for k, v in model.teacher.state_dict().items():  # no update without the hook
        assert torch.equal(v, teacher[k]), k
    lab = model.labellers['sac']
    assert lab.prior_updates.item() == 3
    assert torch.allclose(lab.class_prior.sum(), torch.tensor(1.0), atol=1e-2)
    panels = model.terms['sac'].vis_panels()
    assert panels['sac_pseudo_labels'].shape == (32, 32)
    assert panels['sac_view'].dtype == torch.uint8 and panels['sac_view'].shape[0] == 3


def test_sac_before_the_teacher_starts_and_missing_hook_is_reported():
    model = _adapter(start_iter=5)
    model.train()
    assert model.phases['sac'] == (5, None)
    assert 'sac.loss' not in model.run_terms(_ctx(model, toy_batch(), it=2))
    with pytest.raises(RuntimeError, match='EMATeacherHook'):
        model.run_terms(_ctx(model, toy_batch(), it=5))


def test_num_images_limits_the_target_views():
    model = _adapter(num_images=1, num_views=3)
    model.teacher.init_from(model.student)
    calls = []
    model.teacher.net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    model.run_terms(_ctx(model, toy_batch(batch=4)))
    assert calls == [3]


def test_student_views_get_independent_photometric_noise():
    model = _adapter(num_views=4)
    model.teacher.init_from(model.student)
    ctx = _ctx(model, toy_batch())
    pl = ctx.pseudo_labels('target', 'sac')
    noisy = model.terms['sac'].noise(ctx, pl.inputs, pl.valid)
    diff = ctx.denormalize(noisy) - ctx.denormalize(pl.inputs) * pl.valid[:, None]
    per_view = diff.abs().flatten(1).mean(1)
    assert per_view.shape == (8,) and len(set(per_view.round(decimals=3).tolist())) > 1


def test_views_per_pass_gives_the_same_loss_and_update_with_one_chunk_graph_at_a_time(
    monkeypatch,
):
    """4 target views in passes of 1 / 3 / all: the same logged loss and the same SGD step
    (BN replaced so that per-chunk batch statistics cannot differ); one student forward per
    chunk, the earlier chunks yielded by the term and back-propagated by the adapter."""
    from uda.methods import adapter as adapter_module

    original = adapter_module.backward_uncounted
    results = []
    for per_pass in (None, 1, 3):
        torch.manual_seed(0)
        model = _adapter(num_views=2, views_per_pass=per_pass)
        model.student.bn = model.teacher.net.bn = torch.nn.Identity()
        model.train()
        model.teacher.init_from(model.student)
        wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
        calls: list[int] = []

        def counted(ow, loss, calls=calls, backward=original):
            calls.append(1)
            backward(ow, loss)

        monkeypatch.setattr(adapter_module, 'backward_uncounted', counted)
        torch.manual_seed(1)
        log_vars = model.train_step(toy_batch(seed=3), wrapper)
        weights = [p.detach().clone() for p in model.student.parameters()]
        results.append((log_vars['sac.loss'], weights, len(calls)))
    (ref_loss, ref_w, ref_calls), *chunked = results
    assert ref_calls == 1
    for (loss, weights, n_calls), expected_calls in zip(chunked, (4, 2)):
        assert n_calls == expected_calls  # chunks before the last + the step's backward
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
        for a, b in zip(weights, ref_w):
            assert torch.allclose(a, b, atol=1e-6)


def test_views_per_pass_must_be_positive():
    with pytest.raises(ValueError, match='views_per_pass'):
        _adapter(views_per_pass=0)


def test_sac_loss_batch_mean_confidence_is_the_released_codes_broadcast():
    """visinf/da-sac models/sac.py:148: (loss_ce [B,H,W] * teacher_conf [B,1,H,W]).mean()."""
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 2, 5)
    labels = torch.randint(0, 4, (3, 2, 5))
    labels[0, 0, 0] = 255
    conf = torch.rand(3, 2, 5)
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4])
    ce = torch.nn.functional.cross_entropy(
        logits, labels, weight=focal_class_weights(prior), ignore_index=255, reduction='none'
    )
    reference = (ce * conf[:, None]).mean()  # the code's broadcast to [B, B, H, W]
    torch.testing.assert_close(
        sac_loss(logits, labels, conf, prior, confidence_form='batch_mean'), reference
    )
    per_pixel = (ce * conf).mean()  # the paper's form, uda's default
    torch.testing.assert_close(sac_loss(logits, labels, conf, prior), per_pixel)
    assert not torch.isclose(reference, per_pixel)
