"""benchmarks/converged.py: converged baselines trained when missing, resumed, scored, reused."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'converged', os.path.join(ROOT, 'benchmarks', 'converged.py')
)
converged = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(converged)


class FakeTools:
    """Stands in for tools/train.py and tools/test.py: records commands, writes their files."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.stop_at = stop_at  # a training that dies at this iteration

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        tool = os.path.basename(cmd[1])
        if tool == 'train.py':
            wd = cmd[cmd.index('--work-dir') + 1]
            with open(os.path.join(wd, 'run.py'), 'w') as f:
                f.write('train_cfg = dict(max_iters=4)\n')
            it = self.stop_at or 4
            open(os.path.join(wd, f'iter_{it}.pth'), 'w').close()
            with open(os.path.join(wd, 'last_checkpoint'), 'w') as f:
                f.write(os.path.join(wd, f'iter_{it}.pth'))
            vis = os.path.join(wd, f'start_to_{it}', 'vis_data')  # one folder per start
            os.makedirs(vis, exist_ok=True)
            with open(os.path.join(vis, 'scalars.json'), 'w') as f:
                f.write(json.dumps(dict(mIoU=10.0 + it, step=it)) + '\n')
            return subprocess.CompletedProcess(cmd, 1 if self.stop_at else 0)
        test_dir = cmd[cmd.index('--work-dir') + 1]
        os.makedirs(test_dir, exist_ok=True)
        with open(os.path.join(test_dir, 'metrics.json'), 'w') as f:
            json.dump(dict(mIoU=33.0, IoU={'road': 33.0}, protocol='camvid11'), f)
        return subprocess.CompletedProcess(cmd, 0)


def test_interrupted_run_resumes_then_is_scored_and_reused(tmp_path, monkeypatch) -> None:
    cache = str(tmp_path / 'cache')
    dying = FakeTools(stop_at=2)
    monkeypatch.setattr(converged.subprocess, 'run', dying)
    first = converged.ensure('ABN', 0, 'configs/x.py', cache)
    assert 'training exit code 1' in first['failed'] and len(dying.calls) == 1
    assert '--resume' not in dying.calls[0]
    assert converged.final_checkpoint(converged.work_dir('ABN', 0, cache)) is None  # iter 2 of 4

    tools = FakeTools()
    monkeypatch.setattr(converged.subprocess, 'run', tools)
    result = converged.ensure('ABN', 0, 'configs/x.py', cache)
    train, test = tools.calls
    assert train[-1] == '--resume' and train[train.index('--seed') + 1] == '0'
    assert os.path.basename(test[1]) == 'test.py' and test[3].endswith('iter_4.pth')
    assert result['test_mIoU'] == 33.0 and result['failed'] is None
    assert [tuple(p) for p in result['val_curve']] == [(2, 12.0), (4, 14.0)]  # both starts
    again = FakeTools()
    monkeypatch.setattr(converged.subprocess, 'run', again)
    assert converged.ensure('ABN', 0, 'configs/x.py', cache)['test_mIoU'] == 33.0
    assert again.calls == []  # converged.json: reused, nothing runs


def test_finished_training_is_only_scored(tmp_path, monkeypatch) -> None:
    cache = str(tmp_path / 'cache')
    wd = converged.work_dir('oracle', 1, cache)
    os.makedirs(wd)
    FakeTools()(['python', 'train.py', 'cfg', '--work-dir', wd])  # a complete earlier run
    tools = FakeTools()
    monkeypatch.setattr(converged.subprocess, 'run', tools)
    assert converged.ensure('oracle', 1, 'configs/x.py', cache)['test_mIoU'] == 33.0
    assert [os.path.basename(c[1]) for c in tools.calls] == ['test.py']


def test_configs_exist_and_validate_on_the_val_split() -> None:
    from mmengine.config import Config

    for name, config in converged.RUNS.items():
        cfg = Config.fromfile(os.path.join(ROOT, config))
        val = cfg.val_dataloader.dataset
        if name == 'oracle-holdout':  # dusk frames held out of the oracle's training set
            train = cfg.train_dataloader.dataset.branches.source
            assert val.split_file.endswith('holdout/val.txt')
            assert train.split_file.endswith('holdout/train.txt')
            assert val.dataset.split == train.dataset.split == 'train'
        else:
            assert val.split == 'val', name
        assert cfg.test_dataloader.dataset.split == 'test', name
        assert cfg.train_cfg.max_iters == 3000 and cfg.get('amp') is None, name


def test_the_oracle_holdout_frames_are_disjoint_dusk_train_frames() -> None:
    folder = os.path.join(ROOT, 'splits', 'camvid_dusk', 'holdout')
    train, val = (
        {line.split()[0] for line in open(os.path.join(folder, f'{part}.txt')) if line.strip()}
        for part in ('train', 'val')
    )
    assert len(train) == 50 and len(val) == 12 and not train & val
    assert all(p.startswith('train/0001TP_') for p in train | val)


def test_missing_camvid_is_one_message(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv('CAMVID_ROOT', str(tmp_path / 'nowhere'))
    with pytest.raises(SystemExit, match='CamVid not found'):
        converged.main([])
