"""Crash-safe checkpoint writing (SafeCheckpointHook), the truncated-checkpoint error and the
restricted loader's allow-list (issue 11, items 2 and 6)."""

from __future__ import annotations

import glob
import os
import os.path as osp
import pickle
import runpy
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import Runner

from tests.conftest import toy_runner_cfg
from uda.engine import checkpoint as ckpt_mod
from uda.engine.checkpoint import CheckpointError, load_checkpoint_file

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _cfg(work_dir: str, max_iters: int, max_keep: int = 1, **kw) -> dict:
    cfg = toy_runner_cfg(work_dir, max_iters=max_iters, val_interval=100, **kw)
    cfg['default_hooks']['checkpoint'] = dict(
        type='SafeCheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=max_keep
    )
    return cfg


def _family_cfgs(root: str) -> dict[str, dict]:
    """One 2-iteration run per method family: ABN, SAC (labeller + teacher), adversarial."""
    sac = _cfg(
        f'{root}/sac',
        2,
        terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining')),
        labellers=dict(sac=dict(type='SACLabeller', num_views=2)),
    )
    sac['model']['teacher'] = dict(momentum=0.99, interval=1, start_iter=0)
    disc = dict(type='FCDiscriminator', channels=(8, 8, 8, 8))
    adv = _cfg(
        f'{root}/adv',
        2,
        terms=dict(
            src=dict(type='SourceCE'),
            out=dict(type='OutputAdversarial', aux_weight=0, discriminator=disc),
        ),
    )
    adv['optim_wrapper'] = dict(
        constructor='AdapterOptimWrapperConstructor',
        student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        discriminators=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4)),
    )
    adv['param_scheduler'] = [dict(type='PolyLR', power=0.9, begin=0, end=4, by_epoch=False)]
    return dict(abn=_cfg(f'{root}/abn', 2), sac=sac, adv=adv)


@pytest.fixture(scope='module')
def family_ckpts(tmp_path_factory) -> dict[str, str]:
    root = str(tmp_path_factory.mktemp('families'))
    out = {}
    for name, cfg in _family_cfgs(root).items():
        Runner.from_cfg(Config(cfg)).train()
        out[name] = f'{root}/{name}/iter_2.pth'
    return out


def _last(work_dir) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


# (d) normal runs --------------------------------------------------------------------------


def test_normal_run_writes_iter_files_and_keeps_max_keep_ckpts(tmp_path) -> None:
    Runner.from_cfg(Config(_cfg(str(tmp_path), 6, max_keep=2))).train()
    assert sorted(osp.basename(p) for p in glob.glob(f'{tmp_path}/iter_*')) == [
        'iter_4.pth',
        'iter_6.pth',
    ]
    assert _last(tmp_path) == str(tmp_path / 'iter_6.pth')
    assert not glob.glob(f'{tmp_path}/*.tmp')
    hub = load_checkpoint_file(str(tmp_path / 'iter_6.pth'))['message_hub']
    assert hub['runtime_info']['keep_ckpt_ids'] == [4, 6]


def test_every_schedule_uses_the_safe_hook() -> None:
    for path in glob.glob(f'{ROOT}/configs/_base_/schedules/*.py'):
        hooks = Config.fromfile(path).get('default_hooks', {})
        assert hooks.get('checkpoint', {}).get('type') == 'SafeCheckpointHook', path


# (a) a crash while a checkpoint is written -------------------------------------------------


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing in the training code catches it."""


def _crash_during_second_save(monkeypatch, where: str) -> dict:
    """Make the second checkpoint save (iter_4) die at ``where``: 'write' = half of the file
    written, 'pointer' = file complete, last_checkpoint not yet rewritten."""
    seen: dict = dict(saves=0)
    put = LocalBackend.put

    def half_put(self, obj, filepath):
        seen['saves'] += 1
        if where == 'write' and seen['saves'] == 2:
            with open(filepath, 'wb') as f:
                f.write(obj[: len(obj) // 2])
            seen['partial'] = (str(filepath), obj[: len(obj) // 2])
            raise _Killed
        put(self, obj, filepath)

    write_text = ckpt_mod.write_text_atomic

    def dying_pointer(path, text):
        if where == 'pointer' and text.endswith('iter_4.pth'):
            raise _Killed
        write_text(path, text)

    monkeypatch.setattr(LocalBackend, 'put', half_put)
    monkeypatch.setattr('uda.engine.hooks.checkpoint_hook.write_text_atomic', dying_pointer)
    return seen


@pytest.mark.parametrize('where', ['write', 'pointer'])
def test_crash_mid_save_leaves_a_checkpoint_to_resume_from(tmp_path, monkeypatch, where) -> None:
    seen = _crash_during_second_save(monkeypatch, where)
    with pytest.raises(_Killed):
        Runner.from_cfg(Config(_cfg(str(tmp_path), 4, max_keep=1))).train()
    if where == 'write':  # a real kill runs no clean-up: put the partial file back
        path, data = seen['partial']
        assert path.endswith('iter_4.pth.tmp')
        with open(path, 'wb') as f:
            f.write(data)
    monkeypatch.undo()

    # The previous checkpoint survives and is what last_checkpoint names; no partial iter_4.pth.
    assert _last(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert load_checkpoint_file(str(tmp_path / 'iter_2.pth'))['meta']['iter'] == 2
    if where == 'write':
        assert not (tmp_path / 'iter_4.pth').exists()

    cfg = _cfg(str(tmp_path), 4, max_keep=1)
    cfg.update(resume=True, load_from=None)  # tools/train.py --resume (auto)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert runner.iter == 4
    assert not glob.glob(f'{tmp_path}/*.tmp')  # the killed save's temp file is cleaned up
    assert [osp.basename(p) for p in glob.glob(f'{tmp_path}/iter_*')] == ['iter_4.pth']
    assert _last(tmp_path) == str(tmp_path / 'iter_4.pth')


@pytest.mark.slow
def test_sigkill_while_saving_then_resume(tmp_path) -> None:
    """A real SIGKILL half-way through writing iter_4 in a training subprocess."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {ROOT!r})
        from mmengine.config import Config
        from mmengine.fileio import LocalBackend
        from mmengine.runner import Runner
        from tests.engine.test_checkpoint_safety import _cfg

        put, calls = LocalBackend.put, []
        def killing_put(self, obj, filepath):
            calls.append(filepath)
            if len(calls) == 2:
                with open(filepath, 'wb') as f:
                    f.write(obj[: len(obj) // 2])
                    f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            put(self, obj, filepath)
        LocalBackend.put = killing_put
        Runner.from_cfg(Config(_cfg({str(tmp_path)!r}, 4, max_keep=1))).train()
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert (tmp_path / 'iter_4.pth.tmp').exists() and not (tmp_path / 'iter_4.pth').exists()
    assert _last(tmp_path) == str(tmp_path / 'iter_2.pth')
    cfg = _cfg(str(tmp_path), 4, max_keep=1)
    cfg.update(resume=True, load_from=None)
    Runner.from_cfg(Config(cfg)).train()
    assert _last(tmp_path) == str(tmp_path / 'iter_4.pth')
    assert not glob.glob(f'{tmp_path}/*.tmp') and not (tmp_path / 'iter_2.pth').exists()


# (b) truncated checkpoints -------------------------------------------------------------------


def _truncated(src: str, dst: str, keep: float = 0.5) -> str:
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst, 'wb') as f:
        f.write(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize('keep', [0.0, 0.5, 0.999])
def test_truncated_checkpoint_is_one_clear_error(family_ckpts, tmp_path, keep) -> None:
    bad = _truncated(family_ckpts['abn'], str(tmp_path / 'iter_2.pth'), keep)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(bad)
    msg = str(err.value)
    assert bad in msg and 'truncated' in msg and 'resume from the previous one' in msg
    assert 'PytorchStreamReader' not in msg


def test_truncated_checkpoint_in_resume_and_tools(family_ckpts, tmp_path, monkeypatch) -> None:
    bad = _truncated(family_ckpts['abn'], str(tmp_path / 'iter_2.pth'))
    with open(tmp_path / 'last_checkpoint', 'w') as f:
        f.write(bad)
    cfg = _cfg(str(tmp_path), 4)
    cfg.update(resume=True, load_from=None)  # --resume: last_checkpoint names the bad file
    with pytest.raises(CheckpointError, match='truncated'):
        Runner.from_cfg(Config(cfg)).train()

    config = str(tmp_path / 'toy.py')
    Config(_cfg(str(tmp_path), 2)).dump(config)
    for tool, argv in [
        ('test.py', [config, bad]),
        ('export.py', [config, bad, '--format', 'torchscript', '--out', str(tmp_path / 'm.pt')]),
    ]:
        monkeypatch.setattr(sys, 'argv', [tool, *argv])
        with pytest.raises(SystemExit) as exc:
            runpy.run_path(f'{ROOT}/tools/{tool}', run_name='__main__')
        assert bad in str(exc.value.code) and 'truncated' in str(exc.value.code)


# (c) the allow-list --------------------------------------------------------------------------


@pytest.mark.parametrize('family', ['abn', 'sac', 'adv'])
def test_every_family_checkpoint_loads_with_the_restricted_loader(family_ckpts, family) -> None:
    path = family_ckpts[family]
    ckpt = load_checkpoint_file(path)
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    scalars = ckpt['message_hub']['log_scalars']
    assert all(isinstance(v, HistoryBuffer) for v in scalars.values())
    assert scalars['train/loss'].mean() == pytest.approx(scalars['train/loss'].mean())
    # Every global the file names is allowed; builtins.getattr only as the narrow stand-in.
    named = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    allowed = {
        t[1] if isinstance(t, tuple) else f'{t.__module__}.{t.__qualname__}'
        for t in ckpt_mod._safe_types()
    }
    assert named <= allowed
    assert getattr not in ckpt_mod._safe_types()
    if family == 'sac':
        assert 'labellers.sac.class_prior' in ckpt['state_dict']
        assert 'teacher.ready' in ckpt['state_dict']
    if family == 'adv':
        assert set(ckpt['optimizer']) == {'student', 'discriminators'}


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _crafted(tmp_path, marker: str) -> dict:
    hb_min = _Reduce(getattr, HistoryBuffer, 'min')  # what HistoryBuffer itself pickles
    return dict(
        eval=_Reduce(eval, f'open({marker!r}, "w")'),
        system=_Reduce(os.system, f'touch {marker}'),
        getattr_init=_Reduce(getattr, HistoryBuffer, '__init__'),
        getattr_builtins=_Reduce(getattr, hb_min, '__builtins__'),
        getattr_globals=_Reduce(getattr, hb_min, '__globals__'),
        getattr_eval=_Reduce(getattr, _Reduce(getattr, hb_min, '__builtins__'), 'eval'),
    )


@pytest.mark.parametrize(
    'attack',
    ['eval', 'system', 'getattr_init', 'getattr_builtins', 'getattr_globals', 'getattr_eval'],
)
def test_crafted_checkpoint_runs_nothing_and_hands_back_no_callable(tmp_path, attack) -> None:
    marker = str(tmp_path / 'ran')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': _crafted(tmp_path, marker)[attack]}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(path)
    msg = str(err.value)
    assert path in msg and 'nothing in it was run' in msg
    assert not os.path.exists(marker)


def test_history_buffer_statistics_still_resolve(tmp_path) -> None:
    """The one use of getattr in mmengine's pickles keeps working (old checkpoints too)."""
    path = str(tmp_path / 'hb.pth')
    torch.save({'hb': HistoryBuffer([1.0, 3.0], [1, 1])}, path)
    assert 'builtins.getattr' in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert load_checkpoint_file(path)['hb'].mean() == 2.0
    with pytest.raises(pickle.UnpicklingError, match='refused'):
        ckpt_mod._history_buffer_statistic(HistoryBuffer, '__init__')
