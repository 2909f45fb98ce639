"""Multi-process training through the Runner's launcher (torchrun + gloo on CPU)."""
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.conftest import toy_runner_cfg

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


@pytest.mark.slow
def test_two_process_ddp_training(tmp_path):
    cfg = toy_runner_cfg(str(tmp_path / 'ddp'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    path = tmp_path / 'toy_config.py'
    Config(cfg).dump(str(path))
    # The toy segmentor is registered by tests.conftest; a tiny launcher script imports it and
    # then runs tools/train.py as torchrun would.
    launcher = tmp_path / 'launch.py'
    launcher.write_text(
        'import runpy, sys\n'
        f'sys.path.insert(0, {ROOT!r})\n'
        'import tests.conftest  # noqa: F401\n'
        f'runpy.run_path({os.path.join(ROOT, "tools/train.py")!r}, run_name="__main__")\n')
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
         '--master_port', '29517', str(launcher), str(path), '--launcher', 'pytorch',
         '--work-dir', str(tmp_path / 'ddp')],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    report = json.loads((tmp_path / 'ddp' / 'metrics.json').read_text())
    assert report['num_images'] == 4  # the val set, split over 2 ranks and gathered
    assert (tmp_path / 'ddp' / 'iter_2.pth').is_file()
