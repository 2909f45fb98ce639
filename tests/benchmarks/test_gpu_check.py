"""benchmarks/gpu_check.py in its reduced CPU mode: every section prints, every cell runs."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))


@pytest.mark.slow
def test_reduced_gpu_check_prints_every_section(tmp_path, capsys):
    import gpu_check

    argv = ['--reduced', '--device', 'cpu', '--methods', 'ABN', 'SAC', 'UniMatch']
    argv += ['--precisions', 'fp32', 'bf16', '--archs', 'DeepLab-v2 R101']
    assert gpu_check.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith('uda GPU check: ') and '\ndate: 20' in out
    for method in ('ABN', 'SAC', 'UniMatch'):
        for precision in ('fp32', 'bf16'):
            row = f'| DeepLab-v2 R101 | {method} | {precision} | '
            assert out.count(row) == 2, row  # step table and workers table
    assert 'error' not in out and 'skipped' not in out
    assert '2. reference SAC step' in out and 'not run: give --reference' in out
    assert 'images/s per loader worker' in out


@pytest.mark.slow
def test_gpu_check_sh_writes_its_output_file(tmp_path):
    out_file = tmp_path / 'check.txt'
    env = dict(
        os.environ, OUT=str(out_file), PYTHON=sys.executable, OMP_NUM_THREADS='1', PYTHONPATH=ROOT
    )
    args = ['--reduced', '--device', 'cpu', '--methods', 'ABN', '--precisions', 'fp32']
    args += ['--archs', 'SegFormer MiT-B5']
    res = subprocess.run(
        ['bash', os.path.join(ROOT, 'benchmarks', 'gpu_check.sh'), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    text = out_file.read_text()
    assert '| SegFormer MiT-B5 | ABN | fp32 | ' in text and 'date: ' in text


@pytest.mark.slow
def test_ddp_step_benchmark_times_the_three_wrappers():
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    res = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'benchmarks', 'ddp_step.py')]
        + ['--size', '64', '64', '--batch', '2', '--steps', '1', '--rounds', '1'],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    for row in ('| old wrapper | ', '| new wrapper | ', '| torch DDP | '):
        assert row in res.stdout
