"""tools/train.py and tools/test.py as a user runs them (subprocess, toy config file)."""

import json
import os
import subprocess
import sys

from mmengine.config import Config

from tests.conftest import toy_runner_cfg

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')


def _tool(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT), OMP_NUM_THREADS='1')
    # The tools run as scripts; the toy segmentor is registered by importing the test helpers.
    code = (
        f'import sys, runpy; sys.path.insert(0, {os.path.abspath(ROOT)!r}); '
        'import tests.conftest; sys.argv = sys.argv[1:]; '
        'runpy.run_path(sys.argv[0], run_name="__main__")'
    )
    return subprocess.run(
        [sys.executable, '-c', code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_then_test_cli(tmp_path):
    cfg = toy_runner_cfg(str(tmp_path / 'train'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    cfg['test_dataloader'] = cfg['val_dataloader']
    cfg['test_evaluator'] = cfg['val_evaluator']
    cfg['test_cfg'] = dict(type='TestLoop')
    path = tmp_path / 'toy_config.py'
    Config(cfg).dump(str(path))
    train = _tool(
        os.path.join(ROOT, 'tools/train.py'),
        str(path),
        '--work-dir',
        str(tmp_path / 'train'),
        '--seed',
        '3',
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert 'target mIoU (synthetic9, 4 images)' in train.stdout
    ckpt = tmp_path / 'train' / 'iter_2.pth'
    test = _tool(
        os.path.join(ROOT, 'tools/test.py'),
        str(path),
        str(ckpt),
        '--work-dir',
        str(tmp_path / 'test'),
        cwd=tmp_path,
    )
    assert test.returncode == 0, test.stderr[-3000:]
    report = json.loads((tmp_path / 'test' / 'metrics.json').read_text())
    assert set(report['IoU']) == {
        'road',
        'sidewalk',
        'building',
        'pole',
        'traffic sign',
        'vegetation',
        'sky',
        'person',
        'car',
    }
    table = (tmp_path / 'test' / 'per_class.md').read_text()
    assert '| road |' in table
    assert len(list((tmp_path / 'test' / 'pred').glob('*.png'))) == 4


def test_train_cli_rejects_unknown_option_key(tmp_path):
    path = tmp_path / 'toy_config.py'
    Config(toy_runner_cfg(str(tmp_path))).dump(str(path))
    out = _tool(
        os.path.join(ROOT, 'tools/train.py'),
        str(path),
        '--cfg-options',
        'train_cfg.max_iter=3',
        'trian_cfg.max_iters=3',
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "'trian_cfg' is not a key" in out.stderr


def test_train_cli_reports_warm_up_start_and_adapted_miou(tmp_path):
    """A run with a warm-up phase prints its starting point next to the adapted model."""
    terms = dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining'))
    labellers = dict(sac=dict(type='SACLabeller', num_images=1, num_views=2))
    cfg = toy_runner_cfg(
        str(tmp_path / 'train'), max_iters=4, val_interval=2, terms=terms, labellers=labellers
    )
    cfg.pop('work_dir')
    cfg['model']['teacher'] = dict(momentum=0.99, interval=1, start_iter=2)
    cfg['default_hooks']['logger']['log_metric_by_epoch'] = False  # validations by iteration
    path = tmp_path / 'toy_config.py'
    Config(cfg).dump(str(path))
    out = _tool(
        os.path.join(ROOT, 'tools/train.py'),
        str(path),
        '--work-dir',
        str(tmp_path / 'train'),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    history = [
        json.loads(line)
        for line in next((tmp_path / 'train').glob('*/vis_data/scalars.json'))
        .read_text()
        .splitlines()
        if '"mIoU"' in line
    ]
    assert [h['step'] for h in history] == [2, 4]
    first, last = history[0]['mIoU'], history[1]['mIoU']
    assert (
        f'warm-up (before self-training, iteration 2): {first:.2f} -> adapted '
        f'(iteration 4): {last:.2f} mIoU ({last - first:+.2f})'
    ) in out.stdout


def test_run_tool_destroys_the_process_group_after_main(tmp_path):
    """A distributed tool run ends with the process group destroyed (after a barrier), not
    left to interpreter exit, where gloo could abort a rank (CI's two-process SAC test)."""
    import torch.distributed as dist

    from uda.engine.config import run_tool

    seen = []

    def main():
        dist.init_process_group(
            'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1
        )
        seen.append(dist.is_initialized())

    run_tool(main)
    assert seen == [True] and not dist.is_initialized()
