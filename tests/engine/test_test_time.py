"""Test-time adaptation: the adapt-then-predict loop, its normalisation, resets and guard."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope

from tests.conftest import toy_batch
from uda.engine.test_time import CollapseGuard, TestTimeAdapter, prior_batch_norm
from uda.registry import MODELS


def stream_batch(seed: int, batch: int = 2, labelled: bool = True) -> dict:
    data = toy_batch(('target',), batch=batch, labelled=('target',) if labelled else (), seed=seed)
    return data['target']


def toy_adapter(terms: dict, **kw) -> nn.Module:
    with DefaultScope.overwrite_default_scope('uda'):
        return MODELS.build(
            dict(
                type='Adapter',
                segmentor=dict(type='ToySegmentor', num_classes=19),
                terms=terms,
                **kw,
            )
        )


SGD = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
TENT_TERMS = dict(ent=dict(type='MinEnt', weight=1.0, aux_weight=0.0))


def state(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- normalisation


def test_prior_zero_is_a_training_mode_batchnorm_and_leaves_running_stats():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(2.0)
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    before = copy.deepcopy(bn.state_dict())
    bn.eval()
    with prior_batch_norm([bn], 0):
        out = bn(x)
    ref = nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    torch.testing.assert_close(out, ref)
    for k, v in bn.state_dict().items():
        torch.testing.assert_close(v, before[k])
    with prior_batch_norm([bn], None):  # source statistics: the module untouched
        torch.testing.assert_close(
            bn(x),
            nn.functional.batch_norm(
                x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
            ),
        )
    assert 'forward' not in bn.__dict__


def test_prior_strength_mixes_source_and_batch_statistics():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(2, affine=False).eval()
    bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    x = torch.randn(2, 2, 3, 3)
    n = 2  # images; N = 2 -> lambda = 1/2
    mu = 0.5 * bn.running_mean + 0.5 * x.mean((0, 2, 3))
    var = 0.5 * bn.running_var + 0.5 * x.var((0, 2, 3), unbiased=True)
    with prior_batch_norm([bn], n):
        out = bn(x)
    ref = (x - mu.view(1, 2, 1, 1)) / torch.sqrt(var.view(1, 2, 1, 1) + bn.eps)
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match='prior_strength'):
        with prior_batch_norm([bn], -1):
            pass


# ---------------------------------------------------------------- the loop


def test_adaptation_never_sees_the_labels():
    model = toy_adapter(dict(src=dict(type='SourceCE', branch='target')))
    tta = TestTimeAdapter(model, SGD)
    with pytest.raises(KeyError, match='needs labels'):
        tta.step(stream_batch(0))


def test_continual_adapts_and_predictions_carry_labels_for_the_metric():
    model = toy_adapter(TENT_TERMS)
    source = state(model.student)
    tta = TestTimeAdapter(model, SGD, norm=dict(prior_strength=0))
    out = tta.step(stream_batch(0))
    assert len(out) == 2 and out[0]['pred_sem_seg'].shape == (32, 32)
    assert 'gt_sem_seg' in out[0]
    moved = [k for k, v in model.student.state_dict().items() if not torch.equal(v, source[k])]
    assert moved  # weights changed
    # Running statistics are never written by the test-time normalisation.
    torch.testing.assert_close(model.student.bn.running_mean, source['bn.running_mean'])
    assert tta.summary()['images'] == 2 and tta.summary()['threads'] >= 1


def test_episodic_predicts_every_batch_from_the_source_weights():
    model = toy_adapter(TENT_TERMS)
    fresh = copy.deepcopy(model)
    source = state(model)
    tta = TestTimeAdapter(model, SGD, reset='episodic', norm=dict(prior_strength=0))
    tta.step(stream_batch(0))
    second = tta.step(stream_batch(1))
    alone = TestTimeAdapter(fresh, SGD, reset='episodic', norm=dict(prior_strength=0))
    ref = alone.step(stream_batch(1))
    for a, b in zip(second, ref):
        assert torch.equal(a['pred_sem_seg'], b['pred_sem_seg'])
    tta.reset()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, source[k])


def test_bn_adapt_runs_the_network_once_per_batch(monkeypatch):
    model = toy_adapter(dict(stats=dict(type='PredictionStatistics')))
    calls = []
    orig = model.student.forward
    monkeypatch.setattr(model.student, 'forward', lambda *a, **k: calls.append(1) or orig(*a, **k))
    source = state(model)
    tta = TestTimeAdapter(model, None, norm=dict(prior_strength=0))
    out = tta.step(stream_batch(0))
    assert len(calls) == 1
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, source[k])
    # The prediction is the batch-statistics forward, not the source-statistics one.
    batch = model.data_preprocessor(stream_batch(0), False)['inputs']
    model.student.train()
    with torch.no_grad():
        train_mode = model.student(batch).argmax(1)
    model.student.eval()
    assert torch.equal(out[0]['pred_sem_seg'], train_mode[0])
    assert tta.log['stats.entropy'] > 0


def test_teacher_is_initialised_and_follows_the_student_per_step():
    model = toy_adapter(
        dict(cotta=dict(type='CoTTASelfTraining')),
        labellers=dict(cotta=dict(type='CoTTALabeller', scales=(1.0,), flip=False)),
        teacher=dict(momentum=0.9, interval=1),
    )
    src = state(model.student)
    tta = TestTimeAdapter(model, SGD, norm=dict(prior_strength=0), predict_with='teacher')
    tta.step(stream_batch(0))
    student = model.student.state_dict()
    for k, v in model.teacher.net.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, 0.9 * src[k] + 0.1 * student[k])
    assert int(model.teacher.updates) == 1


def test_cotta_restore_returns_weights_to_the_source():
    def run(prob: float) -> bool:
        torch.manual_seed(0)
        model = toy_adapter(
            dict(cotta=dict(type='CoTTASelfTraining')),
            labellers=dict(cotta=dict(type='CoTTALabeller', scales=(1.0,), flip=False)),
            teacher=dict(momentum=0.999, interval=1),
        )
        src = state(model.student)
        TestTimeAdapter(model, SGD, restore_prob=prob).step(stream_batch(0))
        now = model.student.state_dict()
        return all(torch.equal(now[k], src[k]) for k, _ in model.student.named_parameters())

    assert run(1.0) and not run(0.0)


def test_cotta_averages_teacher_views_only_where_the_anchor_is_unsure():
    def counts(confidence: float):
        model = toy_adapter(
            dict(cotta=dict(type='CoTTASelfTraining')),
            labellers=dict(
                cotta=dict(type='CoTTALabeller', confidence=confidence, scales=(0.5, 1.0))
            ),
            teacher=dict(momentum=0.999, interval=1),
        )
        tta = TestTimeAdapter(model, SGD)
        tta.start()
        x = model.data_preprocessor(stream_batch(0), False)['inputs']
        ctx = model.make_context({'target': x}, {'target': [{}, {}]}, iteration=0)
        pl = ctx.pseudo_labels('target', 'cotta')
        assert model.labeller('cotta').anchor is not None
        assert 'cotta' not in ''.join(model.state_dict())  # the anchor is not saved
        return ctx.counts['teacher_aug'], float(pl.extras['unsure'].float().mean())

    assert counts(1.0) == (4, 1.0)  # 2 scales x flip, every pixel unsure
    assert counts(0.0) == (0, 0.0)


def test_collapse_guard_resets_to_the_source_weights(caplog):
    # Entropy minimisation with a huge step drives the toy's predictions from 4 classes onto 2
    # (class-histogram entropy 0.94 -> 0.58 nats) and its pixel entropy from 0.66 to 0.02.
    torch.manual_seed(0)
    model = toy_adapter(TENT_TERMS)
    source = state(model.student)
    tta = TestTimeAdapter(
        model,
        dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=50.0)),
        norm=dict(prior_strength=0),
        collapse_guard=dict(warmup=1, momentum=0.0, min_class_entropy=0.7),
    )
    with caplog.at_level(logging.WARNING):
        for i in range(6):
            tta.step(stream_batch(i))
            if tta.resets:
                break
    assert tta.resets, 'the stream did not collapse'
    event = tta.resets[0]
    assert 'class-histogram entropy' in event['reason']
    for k, v in model.student.state_dict().items():
        torch.testing.assert_close(v, source[k])
    assert tta.summary()['resets'] == tta.resets


def test_collapse_guard_keeps_a_diverse_stream():
    guard = CollapseGuard(4, warmup=2, momentum=0.0, min_class_entropy=0.5, min_pixel_entropy=0.5)
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    diverse = torch.arange(16).view(1, 4, 4) % 4
    ent = torch.full((1, 4, 4), 0.5)
    assert guard.observe(torch.zeros(1, 4, 4, dtype=torch.long), valid, ent) is None  # no ref
    for _ in range(2):
        guard.reference(diverse, valid, ent)
    assert all(guard.observe(diverse, valid, ent) is None for _ in range(5))
    assert guard.observe(diverse, valid, ent * 0.01) is not None  # over-confident
    guard.restart()
    assert guard.observe(torch.zeros(1, 4, 4, dtype=torch.long), valid, ent) is not None
    with pytest.raises(ValueError, match='watches nothing'):
        CollapseGuard(4, min_class_entropy=None, min_pixel_entropy=None)


def test_bad_settings_name_the_key():
    model = toy_adapter(TENT_TERMS)
    with pytest.raises(ValueError, match='reset'):
        TestTimeAdapter(model, SGD, reset='sometimes')
    with pytest.raises(ValueError, match='no optimiser'):
        TestTimeAdapter(model, None).step(stream_batch(0))
    with pytest.raises(ValueError, match='norm'):
        TestTimeAdapter(model, SGD, norm=dict(alpha=0.1))


def test_tent_entropy_is_the_mean_entropy_in_nats():
    from uda.methods.tent import softmax_entropy

    logits = torch.tensor([[[[0.0]], [[0.0]]], [[[100.0]], [[0.0]]]])  # [2, 2, 1, 1]
    torch.testing.assert_close(softmax_entropy(logits).flatten(), torch.tensor([0.693147, 0.0]))


def _tta_runner(tmp_path, teacher=None, teachers=None):
    """The toy config (its default_hooks hold the teacher hook, as every config's) under
    TestTimeAdaptLoop, from a saved source model; the loop over 2 batches of 2 images."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from tests.conftest import toy_runner_cfg

    cfg = toy_runner_cfg(str(tmp_path))
    cfg['model']['terms'] = dict(ent=dict(type='TentEntropy'))
    cfg['model']['teacher'] = teacher
    cfg['model']['teachers'] = teachers
    cfg['model']['segmentor'] = dict(
        type='ToySegmentor', num_classes=19, train_only=dict(norm=True)
    )
    with DefaultScope.overwrite_default_scope('uda'):
        source = MODELS.build(cfg['model'])
    torch.save(dict(state_dict=source.state_dict(), meta={}), str(tmp_path / 'src.pth'))
    cfg.update(
        test_dataloader=cfg['val_dataloader'],
        test_evaluator=cfg['val_evaluator'],
        test_cfg=dict(
            type='TestTimeAdaptLoop',
            norm=dict(prior_strength=0),
            reset='continual',
            optim_wrapper=SGD,
        ),
        load_from=str(tmp_path / 'src.pth'),
    )
    return Runner.from_cfg(Config(cfg)), source


def test_registered_loop_runs_under_the_runner(tmp_path):
    runner, source = _tta_runner(tmp_path)
    metrics = runner.test()
    assert metrics['mIoU'] is not None and metrics['tta/ms_per_image'] > 0
    assert runner.test_loop.summary['images'] == 4 and runner.test_loop.summary['batches'] == 2
    adapted = runner.model.student.bn.weight
    assert not torch.equal(adapted, source.student.bn.weight)  # adapted, from the loaded source
    assert torch.equal(runner.model.student.conv.weight, source.student.conv.weight)


def test_the_default_teacher_hook_leaves_the_test_time_teacher_to_the_loop(tmp_path):
    """default_hooks.teacher is in every config; TestTimeAdaptLoop updates the teacher once
    per adaptation step itself (named teachers too) and calls no training hook point, so
    nothing doubles."""
    runner, _ = _tta_runner(
        tmp_path,
        teacher=dict(momentum=0.9, interval=1),
        teachers=dict(slow=dict(momentum=0.99, interval=2)),
    )
    assert any(type(h).__name__ == 'EMATeacherHook' for h in runner.hooks)
    runner.test()
    assert runner.test_loop.summary['batches'] == 2
    assert int(runner.model.teacher.updates) == 2
    assert int(runner.model.teachers['slow'].updates) == 1


def test_sac_at_test_time_keeps_its_class_prior_until_an_episodic_reset():
    model = toy_adapter(
        dict(sac=dict(type='SACSelfTraining', log_per_class=False)),
        labellers=dict(sac=dict(type='SACLabeller', num_views=2)),
        teacher=dict(momentum=0.999, interval=1),
    )
    prior = model.labeller('sac').class_prior.clone()
    tta = TestTimeAdapter(model, SGD, predict_with='teacher')
    tta.step(stream_batch(0))
    assert int(model.labeller('sac').prior_updates) == 1
    assert not torch.equal(model.labeller('sac').class_prior, prior)
    tta.reset()
    assert int(model.labeller('sac').prior_updates) == 0
    torch.testing.assert_close(model.labeller('sac').class_prior, prior)
