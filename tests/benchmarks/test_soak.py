"""benchmarks/soak.py: the memory it samples and the growth it reports per 1000 steps."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location('soak', os.path.join(ROOT, 'benchmarks', 'soak.py'))
soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soak)


def test_growth_is_the_slope_after_the_warm_up():
    # 500 MiB flat after a warm-up that grew 100 MiB, plus 2 MiB per 1000 steps.
    points = [
        (x, dict(main=400 + min(x, 100) + 0.002 * x, workers=0.0)) for x in range(0, 1001, 50)
    ]
    for _, s in points:
        s['total'] = s['main'] + s['workers']
    fit = soak.growth(points, warmup=100)
    assert fit['samples'] == 19 and fit['first_step'] == 100
    assert fit['total']['growth_mib_per_1000'] == pytest.approx(2.0, abs=0.01)
    assert fit['total']['growth_pct_per_1000'] == pytest.approx(100 * 2.0 / 500.2, abs=0.01)
    assert fit['total']['robust_mib_per_1000'] == pytest.approx(2.0, abs=0.01)
    # One transient allocator step moves the least-squares line, not the robust slope.
    points[10][1]['total'] += 30
    fit = soak.growth(points, warmup=100)
    assert abs(fit['total']['growth_mib_per_1000'] - 2.0) > 1
    assert fit['total']['robust_mib_per_1000'] == pytest.approx(2.0, abs=0.01)
    with pytest.raises(ValueError, match='samples after the warm-up'):
        soak.growth(points, warmup=960)


def test_samples_this_process_and_its_workers():
    anon, rss = soak.memory_mib(os.getpid())
    assert 0 < anon <= rss
    assert soak.memory_mib(2**22 + 12345) == (0.0, 0.0)  # no such process
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        assert child.pid in soak.children(os.getpid())
        s = soak.sample()
        assert s['workers'] > 0 and s['total'] == pytest.approx(s['main'] + s['workers'])
    finally:
        child.kill()
        child.wait()
