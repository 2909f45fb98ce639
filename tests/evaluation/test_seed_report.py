"""tools/report.py: mean ± std over runs, as Markdown."""

from __future__ import annotations

import json
import math

import pytest

from uda.evaluation.seed_report import find_metrics, seed_report


def write(path, miou, road, car, protocol='p'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            dict(
                mIoU=miou,
                aAcc=90.0,
                mAcc=miou + 1,
                protocol=protocol,
                IoU=dict(road=road, car=car),
                Acc=dict(road=road, car=car),
                num_images=3,
            )
        )
    )


def test_mean_std_golden(tmp_path) -> None:
    write(tmp_path / 'a' / 'metrics.json', 40.0, 80.0, None)
    write(tmp_path / 'b' / 'test' / 'metrics.json', 42.0, 82.0, 10.0)
    write(tmp_path / 'c' / 'metrics.json', 44.0, 90.0, 20.0)
    md, summary = seed_report([str(tmp_path / d) for d in 'abc'], title='demo')
    assert summary['mIoU']['mean'] == pytest.approx(42.0)
    assert summary['mIoU']['std'] == pytest.approx(2.0)  # sample std of 40, 42, 44
    assert summary['road']['mean'] == pytest.approx(84.0)
    assert summary['road']['std'] == pytest.approx(math.sqrt(28.0))
    assert summary['car']['n'] == 2 and summary['car']['mean'] == pytest.approx(15.0)
    assert '| **mIoU** | 42.00 ± 2.00 | 40.00 | 42.00 | 44.00 |' in md
    assert '| car | 15.00 ± 7.07 (n=2) | n/a | 10.00 | 20.00 |' in md
    assert md.startswith('### demo')


def test_single_run_has_no_std(tmp_path) -> None:
    write(tmp_path / 'metrics.json', 40.0, 80.0, 1.0)
    md, summary = seed_report([str(tmp_path / 'metrics.json')])
    assert math.isnan(summary['mIoU']['std']) and '| **mIoU** | 40.00 | 40.00 |' in md


def test_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='No metrics.json'):
        find_metrics(str(tmp_path))
    write(tmp_path / 'x' / 'a' / 'metrics.json', 1, 1, 1)
    write(tmp_path / 'x' / 'b' / 'metrics.json', 1, 1, 1)
    with pytest.raises(ValueError, match='several metrics.json'):
        find_metrics(str(tmp_path / 'x'))
    write(tmp_path / 'y' / 'metrics.json', 1, 1, 1, protocol='other')
    with pytest.raises(ValueError, match='one protocol'):
        seed_report([str(tmp_path / 'x' / 'a'), str(tmp_path / 'y')])
