"""EMATeacherHook: initialisation, the update formula at the configured interval only,
checkpoints, and DDP."""

import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from mmengine.runner import Runner

from tests.conftest import toy_batch, toy_runner_cfg
from uda.engine.hooks import EMATeacherHook
from uda.registry import MODELS


def _adapter(momentum=0.5, interval=3, start_iter=2):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            teacher=dict(momentum=momentum, interval=interval, start_iter=start_iter),
            terms=dict(src=dict(type='SourceCE')),
        )
    )


@pytest.mark.parametrize('momentum,interval,start', [(0.5, 3, 2), (0.999, 1, 0)])
def test_update_matches_formula_at_interval_and_nowhere_else(momentum, interval, start):
    model = _adapter(momentum, interval, start)
    hook = EMATeacherHook()
    runner = SimpleNamespace(model=model, iter=0)
    expected = None
    updated_at = []
    for i in range(11):
        runner.iter = i
        hook.before_train_iter(runner, i)
        if i == start:
            expected = {k: v.clone() for k, v in model.student.state_dict().items()}
        if i < start:
            assert not model.teacher.ready
        # the "optimiser step": the student changes every iteration
        with torch.no_grad():
            for p in model.student.parameters():
                p.add_(0.1 * (i + 1))
            model.student.bn.running_mean.add_(1.0)
        before = {k: v.clone() for k, v in model.teacher.net.state_dict().items()}
        hook.after_train_iter(runner, i)
        after = model.teacher.net.state_dict()
        if i >= start and (i + 1 - start) % interval == 0:
            updated_at.append(i)
            student = model.student.state_dict()
            for k, v in expected.items():
                if v.dtype.is_floating_point:
                    expected[k] = momentum * v + (1 - momentum) * student[k]
                else:
                    expected[k] = student[k].clone()
        else:
            for k in after:
                assert torch.equal(after[k], before[k]), (i, k)
        if expected is not None:
            for k, v in expected.items():
                assert torch.allclose(after[k].to(v.dtype), v, atol=1e-6), (i, k)
    assert updated_at == [i for i in range(start, 11) if (i + 1 - start) % interval == 0]


def test_hook_is_idle_without_a_teacher_and_rejects_a_wrong_one():
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            terms=dict(src=dict(type='SourceCE')),
        )
    )
    assert model.teacher is None
    hook, runner = EMATeacherHook(), SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)  # the default_hooks entry of every config: nothing to drive
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    with pytest.raises(ValueError, match="'student'"):
        model.segmentor_for('teacher')
    # An attribute that is not a MomentumTeacher is a misconfiguration, not a missing teacher.
    with pytest.raises(RuntimeError, match="'student' is a ToySegmentor, not a MomentumTeacher"):
        EMATeacherHook(teacher='student').before_train(runner)


def _run_toy(work_dir, teacher=None, custom_hooks=(), default_teacher_hook=True, iters=3):
    """A 3-iteration toy SAC (or, with ``teacher=None``, ABN) run; its final state."""
    sac = teacher is not None
    cfg = toy_runner_cfg(
        str(work_dir),
        max_iters=iters,
        val_interval=100,
        checkpoint_interval=100,
        terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining')) if sac else None,
        labellers=dict(sac=dict(type='SACLabeller', num_views=2)) if sac else None,
    )
    if sac:
        cfg['model']['teacher'] = teacher
    if not default_teacher_hook:
        del cfg['default_hooks']['teacher']
    cfg['custom_hooks'] = list(custom_hooks)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hooks = [h for h in runner.hooks if isinstance(h, EMATeacherHook)]
    return runner.model, hooks


def test_teacher_updates_without_any_listing_and_old_listings_do_not_double_it(tmp_path):
    teacher = dict(momentum=0.9, interval=1, start_iter=1)
    model, hooks = _run_toy(tmp_path / 'default', teacher)
    assert len(hooks) == 1  # default_hooks.teacher alone: no method lists it
    assert model.teacher.ready and int(model.teacher.updates) == 2  # iterations 1 and 2
    # An older config that still lists the hook (with an override): one update per step,
    # the listed hook's momentum, the default hook standing by.
    listed = [dict(type='EMATeacherHook', momentum=0.5)]
    old, hooks = _run_toy(tmp_path / 'listed', teacher, custom_hooks=listed)
    assert [h.standby for h in hooks] == [True, False] and hooks[1].momentum == 0.5
    assert int(old.teacher.updates) == 2
    # The same as the listing alone, without the default hook, bit for bit.
    alone, _ = _run_toy(tmp_path / 'alone', teacher, listed, default_teacher_hook=False)
    ref, got = alone.state_dict(), old.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not torch.equal(ref['teacher.net.conv.weight'], model.teacher.net.conv.weight)


def test_a_model_without_teacher_trains_the_same_with_the_default_hook(tmp_path):
    a, hooks = _run_toy(tmp_path / 'with')
    b, none = _run_toy(tmp_path / 'without', default_teacher_hook=False)
    assert len(hooks) == 1 and not none and a.teacher is None
    ref, got = b.state_dict(), a.state_dict()
    assert set(ref) == set(got) and all(torch.equal(ref[k], got[k]) for k in ref)


def test_every_config_gets_the_teacher_hook_from_default_hooks_and_none_lists_it():
    from pathlib import Path

    from mmengine.config import Config

    root = Path(__file__).resolve().parents[2] / 'configs'
    leaves = sorted(p for p in root.rglob('*.py') if '_base_' not in p.parts)
    assert leaves
    for path in leaves:
        cfg = Config.fromfile(str(path))
        assert cfg.default_hooks.get('teacher') == dict(type='EMATeacherHook'), path
        listed = [h.get('type') for h in cfg.get('custom_hooks') or []]
        assert 'EMATeacherHook' not in listed, path


def test_teacher_saved_and_restored_with_checkpoints(tmp_path):
    cfg = toy_runner_cfg(
        str(tmp_path),
        max_iters=2,
        val_interval=2,
        terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining')),
        labellers=dict(sac=dict(type='SACLabeller', num_views=2)),
    )
    cfg['model']['teacher'] = dict(momentum=0.9, interval=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    assert model.teacher.ready
    ckpt = torch.load(
        os.path.join(str(tmp_path), 'iter_2.pth'), map_location='cpu', weights_only=False
    )
    keys = ckpt['state_dict']
    assert 'teacher.net.conv.weight' in keys and 'teacher.net.bn.running_mean' in keys
    assert bool(keys['teacher.ready']) and int(keys['teacher.updates']) == 2
    assert 'labellers.sac.class_prior' in keys
    # The teacher is not the student after two momentum updates.
    assert not torch.equal(keys['teacher.net.conv.weight'], keys['student.conv.weight'])
    fresh = MODELS.build(cfg['model'])
    fresh.load_state_dict(keys)
    assert fresh.teacher.ready
    assert torch.equal(fresh.teacher.net.conv.weight, model.teacher.net.conv.weight)
    assert torch.equal(fresh.labellers['sac'].class_prior, model.labellers['sac'].class_prior)


def test_ddp_ignores_teacher_and_trains(tmp_path):
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper

    if dist.is_initialized():
        pytest.skip('a process group is already initialised')
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        model = _adapter(0.9, 1, 0)
        model.teacher.init_from(model.student)
        ddp = MMDistributedDataParallel(module=model)
        ignored = set(ddp.parameters_to_ignore)
        assert {f'teacher.{n}' for n, _ in model.teacher.named_parameters()} <= ignored
        assert 'teacher.net.bn.running_mean' in ignored
        wrapper = OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.1))
        ddp.train_step(toy_batch(), wrapper)
        assert all(p.grad is None for p in model.teacher.parameters())
    finally:
        dist.destroy_process_group()


def test_warm_start_from_an_abn_checkpoint(tmp_path):
    # An ABN model's weights (no teacher keys), as `load_from` of the reference warm start.
    abn = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            terms=dict(src=dict(type='SourceCE')),
            bn_policy='target_only',
        )
    )
    with torch.no_grad():
        for p in abn.student.parameters():
            p.normal_()
    ckpt = str(tmp_path / 'abn.pth')
    torch.save(dict(state_dict=abn.state_dict()), ckpt)
    cfg = toy_runner_cfg(
        str(tmp_path / 'sac'),
        max_iters=1,
        val_interval=10,
        terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining')),
        labellers=dict(sac=dict(type='SACLabeller', num_views=2)),
    )
    cfg['model']['teacher'] = dict(momentum=0.99, interval=100)
    cfg['load_from'] = ckpt
    cfg['optim_wrapper']['optimizer']['lr'] = 0.0
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    assert model.teacher.ready
    # The teacher was initialised from the loaded ABN student (no update before iteration 100).
    for name, value in abn.student.state_dict().items():
        if value.dtype.is_floating_point:
            assert torch.allclose(model.teacher.net.state_dict()[name], value), name


def test_momentum_ramp_and_reuse_outside_the_adapter():
    """DACS / UniMatch-V2's min(1 - 1/(t+1), m), on any model with a teacher and a student."""
    import torch.nn as nn

    from uda.models import MomentumTeacher

    class Pretrainer(nn.Module):  # e.g. a momentum encoder of self-supervised pretraining
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(2, 2)
            self.momentum_encoder = MomentumTeacher(self.encoder, momentum=0.999, ramp=True)

    model = Pretrainer()
    hook = EMATeacherHook(teacher='momentum_encoder', student='encoder')
    runner = SimpleNamespace(model=model, iter=0)
    hook.before_train_iter(runner, 0)
    teacher = model.momentum_encoder
    ms = []
    for i in range(3):
        runner.iter = i
        ms.append(teacher.momentum_now())
        hook.after_train_iter(runner, i)
    assert ms == [0.0, 0.5, pytest.approx(2 / 3)]
    assert int(teacher.updates) == 3
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_hook_drives_every_named_teacher_by_its_own_settings():
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            teacher=dict(momentum=0.9, interval=2, start_iter=1),  # SAC-like: sparse
            teachers=dict(dacs=dict(momentum=0.999, interval=1, start_iter=3, ramp=True)),
            terms=dict(src=dict(type='SourceCE')),
        )
    )
    hook, runner = EMATeacherHook(), SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)
    ready = []
    for i in range(6):
        runner.iter = i
        hook.before_train_iter(runner, i)
        ready.append((bool(model.teacher.ready), bool(model.teachers['dacs'].ready)))
        with torch.no_grad():
            for p in model.student.parameters():
                p.add_(0.1)
        hook.after_train_iter(runner, i)
    assert ready == [(False, False), (True, False), (True, False)] + [(True, True)] * 3
    assert int(model.teacher.updates) == 2  # after iterations 2 and 4
    dacs = model.teachers['dacs']
    assert int(dacs.updates) == 3  # after 3, 4, 5
    # DACS's ramp: its first update (m = 0) copied the student, not SAC's sparse EMA.
    assert not torch.equal(dacs.net.conv.weight, model.teacher.net.conv.weight)
