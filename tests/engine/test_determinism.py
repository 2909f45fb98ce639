"""Seeded runs are reproducible: same seed -> the same weights and metrics, another seed ->
different ones; CPU runs pin their thread count (CPU results depend on it)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tests.engine.test_resume import family_cfg
from uda.engine.hooks import CPUThreadsHook

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _run(work_dir: Path, seed: int) -> tuple[dict, dict]:
    cfg = family_cfg('sac', str(work_dir), max_iters=3)
    cfg['randomness'] = dict(seed=seed)
    cfg['default_hooks']['cpu_threads'] = dict(type='CPUThreadsHook', num_threads=2)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert torch.get_num_threads() == 2
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    return runner.model.state_dict(), metrics


def test_two_seeded_runs_are_identical_and_two_seeds_differ(tmp_path, monkeypatch, restore_threads):
    # A few threads (the hook's pin, over the suite's OMP_NUM_THREADS=1): seeded runs are
    # reproducible at any fixed thread count.
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    weights_a, metrics_a = _run(tmp_path / 'a', seed=0)
    weights_b, metrics_b = _run(tmp_path / 'b', seed=0)
    weights_c, _ = _run(tmp_path / 'c', seed=1)
    assert metrics_a == metrics_b
    for k, v in weights_a.items():
        assert torch.equal(v, weights_b[k]), k
    assert not all(torch.equal(v, weights_c[k]) for k, v in weights_a.items())


def _cpu_runner() -> SimpleNamespace:
    return SimpleNamespace(model=torch.nn.Linear(2, 2))


def test_cpu_threads_hook_pins_the_thread_count(monkeypatch, restore_threads):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    torch.set_num_threads(1)
    CPUThreadsHook(num_threads=3).before_run(_cpu_runner())
    assert torch.get_num_threads() == 3
    CPUThreadsHook(num_threads=None).before_run(_cpu_runner())
    assert torch.get_num_threads() == 3


def test_cpu_threads_hook_leaves_an_explicit_omp_num_threads(monkeypatch, restore_threads):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    torch.set_num_threads(1)
    CPUThreadsHook(num_threads=3).before_run(_cpu_runner())
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize('bad', [0, -1, 1.5, '2'])
def test_cpu_threads_hook_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match='num_threads must be a positive int'):
        CPUThreadsHook(num_threads=bad)


def test_every_leaf_config_pins_cpu_threads():
    leaves = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
    for path in leaves:
        hook = Config.fromfile(str(path)).default_hooks.get('cpu_threads', {})
        assert hook.get('type') == 'CPUThreadsHook' and hook.get('num_threads') == 1, path
