"""uda.evaluation.seed_plots: learning curves over seeds and per-class paired deltas."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from uda.evaluation.seed_plots import (
    add_images_to_tensorboard,
    curve_band,
    per_class_deltas,
    plot_class_deltas,
    plot_curves,
    read_curve,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log_scalars(work_dir, stamp: str, rows: list[dict]) -> None:
    """A run's ``<timestamp>/vis_data/scalars.json`` as mmengine's LocalVisBackend writes it."""
    d = os.path.join(work_dir, stamp, 'vis_data')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'scalars.json'), 'a') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')


def metrics(work_dir, iou: dict) -> None:
    os.makedirs(work_dir, exist_ok=True)
    vals = [v for v in iou.values() if v is not None]
    with open(os.path.join(work_dir, 'metrics.json'), 'w') as f:
        json.dump(dict(mIoU=sum(vals) / len(vals), IoU=iou, protocol='p'), f)


def test_read_curve_merges_resumed_starts_and_skips_training_rows(tmp_path) -> None:
    wd = str(tmp_path / 'run')
    log_scalars(
        wd,
        '20260101_000000',
        [
            {'loss': 2.0, 'lr': 1e-3, 'step': 10},  # training row: no mIoU
            {'mIoU': 10.0, 'aAcc': 50.0, 'step': 100},
            {'mIoU': 12.0, 'aAcc': 55.0, 'step': 200},  # logged, then the run was killed
        ],
    )
    log_scalars(
        wd,
        '20260101_010000',
        [
            {'mIoU': 13.0, 'step': 200},  # the resumed start validates 200 again: it wins
            {'mIoU': 15.0, 'step': 300},
        ],
    )
    assert read_curve(wd) == [(100, 10.0), (200, 13.0), (300, 15.0)]
    assert read_curve(wd, 'aAcc') == [(100, 50.0), (200, 55.0)]
    assert read_curve(str(tmp_path / 'missing')) == []


def test_band_keeps_only_common_iterations(tmp_path) -> None:
    a, b, c = (str(tmp_path / n) for n in 'abc')
    log_scalars(a, 't', [{'mIoU': 10.0, 'step': 100}, {'mIoU': 20.0, 'step': 200}])
    log_scalars(b, 't', [{'mIoU': 14.0, 'step': 100}, {'mIoU': 30.0, 'step': 200}])
    log_scalars(c, 't', [{'mIoU': 12.0, 'step': 100}])  # stopped early
    steps, mean, std, n = curve_band([a, b, c])
    assert n == 3 and steps.tolist() == [100]
    assert mean.tolist() == [12.0] and std[0] == pytest.approx(2.0)  # sample std of 10, 14, 12
    steps, mean, std, n = curve_band([a, b])
    assert steps.tolist() == [100, 200] and mean.tolist() == [12.0, 25.0]
    assert std[1] == pytest.approx(math.sqrt(50.0))
    _, _, std1, n1 = curve_band([a])
    assert n1 == 1 and std1.tolist() == [0.0, 0.0]


def test_per_class_deltas_pair_by_seed(tmp_path) -> None:
    runs = [str(tmp_path / f'sac{s}') for s in range(2)]
    bases = [str(tmp_path / f'abn{s}') for s in range(2)]
    metrics(runs[0], {'road': 80.0, 'car': 30.0, 'sign': None})
    metrics(runs[1], {'road': 84.0, 'car': 20.0, 'sign': 5.0})
    metrics(bases[0], {'road': 79.0, 'car': 35.0, 'sign': 1.0})
    metrics(bases[1], {'road': 80.0, 'car': 10.0, 'sign': 2.0})
    names, d = per_class_deltas(runs, bases)
    assert names == ['road', 'car', 'sign']
    np.testing.assert_array_equal(d[:, :2], [[1.0, -5.0], [4.0, 10.0]])
    assert math.isnan(d[0, 2]) and d[1, 2] == 3.0
    with pytest.raises(ValueError, match='one baseline work dir per run'):
        per_class_deltas(runs, bases[:1])
    metrics(str(tmp_path / 'other'), {'road': 1.0})
    with pytest.raises(ValueError, match='different classes'):
        per_class_deltas([str(tmp_path / 'other')], bases[:1])


def test_pictures_are_written_and_reach_tensorboard(tmp_path) -> None:
    groups = {}
    for name, offset in (('ABN', 0.0), ('SAC', 3.0)):
        groups[name] = []
        for s in range(3):
            wd = str(tmp_path / f'{name}{s}')
            log_scalars(wd, 't', [{'mIoU': offset + s + k, 'step': 100 * k} for k in (1, 2, 3)])
            metrics(wd, {'road': 70.0 + offset + s, 'car': 20.0 - offset})
            groups[name].append(wd)
    curves = plot_curves(groups, str(tmp_path / 'out' / 'curves.png'))
    delta = plot_class_deltas({'SAC': groups['SAC']}, groups['ABN'], str(tmp_path / 'delta.png'))
    for png in (curves, delta):
        assert png is not None
        with Image.open(png) as im:
            assert im.format == 'PNG' and im.size[0] > 300
            assert len(set(im.convert('RGB').getdata())) > 20  # a drawing, not a blank canvas
    assert plot_curves({'x': [str(tmp_path / 'nothing')]}, str(tmp_path / 'none.png')) is None
    assert not (tmp_path / 'none.png').exists()
    add_images_to_tensorboard([curves, delta], str(tmp_path / 'tb'))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / 'tb'))
    acc.Reload()
    assert sorted(acc.Tags()['images']) == ['curves', 'delta']


def test_report_tool_writes_pictures_beside_the_markdown(tmp_path) -> None:
    runs, bases = [], []
    for s in range(2):
        for name, lst, v in (('sac', runs, 40.0), ('abn', bases, 35.0)):
            wd = str(tmp_path / f'{name}{s}')
            log_scalars(wd, 't', [{'mIoU': v + s, 'step': 50}, {'mIoU': v + s + 1, 'step': 100}])
            metrics(wd, {'road': v + s, 'car': v - s})
            lst.append(wd)
    out = tmp_path / 'rep' / 'sac.md'
    out.parent.mkdir()
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'report.py'), *runs, '--title', 'SAC']
    cmd += ['--out', str(out), '--baseline', *bases]
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    assert (tmp_path / 'rep' / 'sac_curves.png').is_file()
    assert (tmp_path / 'rep' / 'sac_delta.png').is_file()
    text = out.read_text()
    assert '![sac_curves.png](sac_curves.png)' in text and '| **mIoU** |' in text
