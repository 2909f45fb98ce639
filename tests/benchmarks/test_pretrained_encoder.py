"""benchmarks/pretrained_encoder.py: cache folder and validity, the command it runs, reuse;
benchmarks/sweep.py --pretrained fills {encoder}."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, 'benchmarks', f'{name}.py')
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pe = _load('pretrained_encoder')
SYN = 'configs/pretrain/mocov2_unet-resnet18_300_synthetic-96x192.py'


def _write(path, **meta):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    full = dict(layout='uda', config=f'/x/{os.path.basename(SYN)}', seed=0, iterations=300)
    full.update(meta)
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': full}, path)


def test_cache_dir_names_config_seed_and_options():
    a = pe.cache_dir(SYN, 0)
    assert a.endswith(
        os.path.join('work_dirs', 'pretrained', 'mocov2_unet-resnet18_300_synthetic-96x192_seed0')
    )
    b = pe.cache_dir(SYN, 0, ['train_cfg.max_iters=10'])
    assert b != a and b.startswith(a + '_')
    assert pe.cache_dir(SYN, 1) != a


def test_stale_reason(tmp_path):
    path = str(tmp_path / 'encoder.pth')
    assert pe.stale_reason(path, SYN, 0, 300) == 'no cached encoder'
    _write(path)
    assert pe.stale_reason(path, SYN, 0, 300) is None
    assert 'seed=0' in pe.stale_reason(path, SYN, 1, 300)
    assert 'iterations=300' in pe.stale_reason(path, SYN, 0, 10)
    _write(path, layout='mocov2')
    assert 'layout' in pe.stale_reason(path, SYN, 0, 300)
    torch.save({'model': 1}, path)
    assert 'layout of tools/pretrain.py' in pe.stale_reason(path, SYN, 0, 300)
    with open(path, 'w') as f:
        f.write('not a checkpoint')
    assert pe.stale_reason(path, SYN, 0, 300).startswith('unreadable')


def test_expected_iterations_follows_options():
    assert pe.expected_iterations(SYN) == 300
    assert pe.expected_iterations(SYN, ['train_cfg.max_iters=7']) == 7


def test_cached_encoder_is_reused_without_running(tmp_path, monkeypatch):
    monkeypatch.setattr(pe, 'CACHE', str(tmp_path))  # an absolute cache folder
    path = os.path.join(pe.cache_dir(SYN, 0), 'encoder.pth')
    assert path.startswith(str(tmp_path))
    _write(path)

    def no_run(*a, **k):
        raise AssertionError('must not pretrain again')

    monkeypatch.setattr(subprocess, 'run', no_run)
    assert pe.ensure_encoder(SYN, 0, log=lambda m: None) == path
    # A stale file (other seed) is removed before pretraining runs.
    _write(path, seed=5)
    with pytest.raises(AssertionError, match='must not pretrain again'):
        pe.ensure_encoder(SYN, 0, log=lambda m: None)
    assert not os.path.exists(path)


def test_command_resumes_when_asked():
    cmd = pe.pretrain_command(SYN, '/w', 2, ['a=1'], resume=True)
    assert cmd[1].endswith(os.path.join('tools', 'pretrain.py'))
    assert cmd[3:] == ['--work-dir', '/w', '--seed', '2', '--resume', '--cfg-options', 'a=1']


def test_sweep_fills_encoder_placeholder():
    sweep = _load('sweep')
    runs = [('ABN', 'c.py', ['model.segmentor.encoder_checkpoint={encoder}'])]
    runs2, common = sweep.with_encoder(runs, ['x={encoder}'], SYN, dry_run=True)
    want = os.path.join(pe.cache_dir(SYN), 'encoder.pth')
    assert runs2[0][2] == [f'model.segmentor.encoder_checkpoint={want}'] and common == [f'x={want}']


@pytest.mark.slow
def test_one_command_pretrains_then_reuses(tmp_path, monkeypatch):
    """The real thing on the built-in shift, 1 iteration (a few seconds of training)."""
    monkeypatch.setattr(pe, 'CACHE', str(tmp_path))
    opts = [
        'train_cfg.max_iters=1',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'model.queue_size=8',
    ]
    path = pe.ensure_encoder(SYN, 0, opts, log=lambda m: None)
    assert path.startswith(str(tmp_path)) and os.path.isfile(path)
    assert pe.stale_reason(path, SYN, 0, 1) is None
    stamp = os.path.getmtime(path)
    assert pe.ensure_encoder(SYN, 0, opts, log=lambda m: None) == path
    assert os.path.getmtime(path) == stamp
