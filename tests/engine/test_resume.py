"""``--resume`` reproduces the uninterrupted run: RNG states, sampler position, every tensor.

The slow tests run ``tools/train.py`` as a subprocess, SIGKILL it right after a checkpoint is
written (before that iteration's validation), resume it and compare every tensor of the final
checkpoint with an uninterrupted run, bit for bit, for each method family.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner

from tests.conftest import toy_adversarial_runner_cfg, toy_runner_cfg
from uda.engine.checkpoint import load_checkpoint_file
from uda.engine.hooks import RNGStateHook, get_rng_state, set_rng_state

ROOT = Path(__file__).resolve().parents[2]


def family_cfg(family: str, work_dir: str, max_iters: int, num_workers: int = 0) -> dict:
    """A toy Runner config of one method family, validating and checkpointing every 2 iters."""
    if family == 'abn':
        cfg = toy_runner_cfg(work_dir, max_iters=max_iters, val_interval=2)
    elif family == 'sac':
        cfg = toy_runner_cfg(
            work_dir,
            max_iters=max_iters,
            val_interval=2,
            terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining')),
            labellers=dict(sac=dict(type='SACLabeller', num_views=2, num_images=1)),
        )
        cfg['model']['teacher'] = dict(momentum=0.9, interval=1, start_iter=2)
    elif family == 'adversarial':
        cfg = toy_adversarial_runner_cfg(
            work_dir, max_iters=max_iters, val_interval=2, schedule_end=max_iters
        )
    else:
        raise ValueError(family)
    cfg['default_hooks']['rng_state'] = dict(type='RNGStateHook')
    cfg['default_hooks']['visualization'] = dict(type='SegVisualizationHook', interval=1000)
    if num_workers:
        cfg['train_dataloader'].update(num_workers=num_workers, persistent_workers=True)
    return cfg


def assert_same(a: Any, b: Any, where: str = '') -> None:
    """Every tensor equal (torch.equal), every other leaf ==, the same keys."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f'{where} differs'
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f'{where} differs'
    elif isinstance(a, HistoryBuffer):
        assert_same(a.data, b.data, where)
    elif isinstance(a, dict):
        assert set(a) == set(b), f'{where}: keys {sorted(set(a) ^ set(b))}'
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{where}: lengths {len(a)} vs {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} vs {b!r}'


def assert_same_final_state(a: dict, b: dict) -> None:
    """Model (student, teacher, BN buffers, class prior, discriminators), optimisers,
    schedulers, RNG states, iteration and the logged losses of two checkpoints."""
    assert set(a) == set(b) and {'state_dict', 'optimizer', 'rng_state'} <= set(a)
    for key in set(a) - {'meta', 'message_hub'}:
        assert_same(a[key], b[key], key)
    assert a['meta']['iter'] == b['meta']['iter']
    hub_a, hub_b = a['message_hub'], b['message_hub']
    assert_same(hub_a['runtime_info']['iter'], hub_b['runtime_info']['iter'], 'iter')
    # Losses and learning rates logged per iteration (timings differ between runs; the
    # validations differ in number: the killed run lost the one after its checkpoint).
    logged = hub_a['log_scalars']
    train = [k for k in logged if k.startswith('train/') and 'time' not in k and 'eta' not in k]
    assert any(k.endswith('lr') for k in train) and any('loss' in k for k in train)
    for k in train:
        assert_same(logged[k], hub_b['log_scalars'][k], k)


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    path = tmp_path / 'rng.pth'
    torch.save(dict(rng_state=get_rng_state()), path)
    expected = (torch.rand(4), np.random.rand(4), np.random.randn(), random.random())
    state = load_checkpoint_file(str(path))['rng_state']
    set_rng_state(state)
    got = (torch.rand(4), np.random.rand(4), np.random.randn(), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1]) and expected[2:] == got[2:]


class _Recorder(Hook):
    """Keeps, per iteration, the batch and the torch / numpy / python RNG states the step
    starts from (reading a state draws nothing)."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.seen: dict[int, tuple] = {}

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        inputs = {k: torch.stack(v['inputs']) for k, v in data_batch.items()}
        state = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
        self.seen[runner.iter] = (inputs, state)


@pytest.mark.parametrize('with_hook', [True, False])
def test_resume_in_process_continues_batches_and_random_draws(tmp_path, with_hook):
    """A 3-iteration SAC run vs. one resumed from its iteration-2 checkpoint (which was
    validated after saving): iteration 3 sees the same batch and starts from the same RNG
    states, and ends with the same weights. Without the hook the RNG states differ."""
    full = family_cfg('sac', str(tmp_path / 'full'), max_iters=3)
    if not with_hook:
        del full['default_hooks']['rng_state']
    runner = Runner.from_cfg(Config(full))
    rec_full = _Recorder()
    runner.register_hook(rec_full)
    runner.train()

    resumed_cfg = family_cfg('sac', str(tmp_path / 'resumed'), max_iters=3)
    if not with_hook:
        del resumed_cfg['default_hooks']['rng_state']
    resumed_cfg.update(resume=True, load_from=str(tmp_path / 'full' / 'iter_2.pth'))
    resumed = Runner.from_cfg(Config(resumed_cfg))
    rec_resumed = _Recorder()
    resumed.register_hook(rec_resumed)
    resumed.train()

    assert list(rec_resumed.seen) == [2]
    (inputs_full, state_full), (inputs_res, state_res) = rec_full.seen[2], rec_resumed.seen[2]
    assert_same(inputs_full, inputs_res, 'batch of iteration 3')  # sampler position
    same_rng = torch.equal(state_full[0], state_res[0])
    assert same_rng == with_hook
    final = resumed.model.state_dict()
    same = [torch.equal(v, final[k]) for k, v in runner.model.state_dict().items()]
    if with_hook:
        assert np.array_equal(state_full[1], state_res[1]) and state_full[2] == state_res[2]
        assert all(same)
    else:  # SAC's views draw from torch's RNG: a different model
        assert not all(same)


def test_load_from_does_not_restore_rng_states(tmp_path):
    """Fine-tuning from a checkpoint (load_from without resume) starts from its own seed."""
    runner = Runner.from_cfg(Config(family_cfg('abn', str(tmp_path / 'a'), max_iters=2)))
    runner.train()
    cfg = family_cfg('abn', str(tmp_path / 'b'), max_iters=2)
    cfg.update(load_from=str(tmp_path / 'a' / 'iter_2.pth'))
    fresh = Runner.from_cfg(Config(cfg))
    hook = next(h for h in fresh.hooks if isinstance(h, RNGStateHook))
    fresh.load_or_resume()
    assert fresh.train_loop.iter == 0  # (building the loop draws the loader's base seed)
    before = torch.get_rng_state()
    hook.before_train(fresh)
    assert torch.equal(before, torch.get_rng_state())


def test_every_leaf_config_saves_rng_states():
    leaves = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
    assert leaves
    for path in leaves:
        hooks = Config.fromfile(str(path)).default_hooks
        assert hooks.get('rng_state', {}).get('type') == 'RNGStateHook', path


# --- kill -9 and --resume through tools/train.py --------------------------------------------

KILL_HOOK = '''
"""Test-only: SIGKILL the training process right after the checkpoint of iteration KILL_AT."""
import os
import signal

from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from uda.registry import HOOKS


@HOOKS.register_module(force=True)
class KillAfterCheckpointHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has written the file

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _train(config: Path, work_dir: Path, *extra: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def kill_and_resume(tmp_path: Path, family: str, num_workers: int = 0) -> None:
    (tmp_path / 'kill_hook.py').write_text(textwrap.dedent(KILL_HOOK))
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    )
    configs = {}
    for name, work_dir in (('full', 'full'), ('killed', 'killed'), ('resume', 'killed')):
        cfg = family_cfg(family, str(tmp_path / work_dir), max_iters=6, num_workers=num_workers)
        # ToySegmentor is registered by tests/conftest.py, the kill hook by kill_hook.py.
        cfg['custom_imports'] = dict(imports=['tests.conftest', 'kill_hook'])
        if name == 'killed':
            cfg['custom_hooks'] = cfg['custom_hooks'] + [dict(type='KillAfterCheckpointHook', at=4)]
        configs[name] = tmp_path / f'{name}.py'
        Config(cfg).dump(str(configs[name]))

    full = _train(configs['full'], tmp_path / 'full', env=env)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _train(configs['killed'], tmp_path / 'killed', env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / 'killed' / 'iter_4.pth').is_file()
    assert not (tmp_path / 'killed' / 'iter_6.pth').exists()
    # The same config without the kill hook; --resume reads last_checkpoint (iter_4.pth).
    resumed = _train(configs['resume'], tmp_path / 'killed', '--resume', env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Advance dataloader 4 steps' in resumed.stdout + resumed.stderr

    a = load_checkpoint_file(str(tmp_path / 'full' / 'iter_6.pth'))
    b = load_checkpoint_file(str(tmp_path / 'killed' / 'iter_6.pth'))
    assert_same_final_state(a, b)
    # The final validation (metrics.json of each work dir).
    metrics = [json.loads((tmp_path / d / 'metrics.json').read_text()) for d in ('full', 'killed')]
    assert metrics[0] == metrics[1]


@pytest.mark.slow
@pytest.mark.parametrize('family', ['abn', 'sac', 'adversarial'])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, family):
    kill_and_resume(tmp_path, family)


@pytest.mark.slow
def test_sigkill_then_resume_matches_with_data_loader_workers(tmp_path):
    kill_and_resume(tmp_path, 'sac', num_workers=2)
