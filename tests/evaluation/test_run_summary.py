"""The report tools/train.py prints after a run, from the run's files alone."""

import json

from uda.evaluation.run_summary import training_summary, validation_history, warm_up_line


def _run(tmp_path, vals, start_iter):
    log_dir = tmp_path / '20260101_000000'
    (log_dir / 'vis_data').mkdir(parents=True)
    lines = [dict(lr=0.01, loss=1.0, step=1)]  # a training record: not a validation
    lines += [dict(mIoU=m, aAcc=50.0, step=s) for s, m in vals]
    (log_dir / 'vis_data' / 'scalars.json').write_text(
        '\n'.join(json.dumps(line) for line in lines) + '\n'
    )
    metrics = dict(mIoU=vals[-1][1], protocol='synthetic', num_images=8)
    (tmp_path / 'metrics.json').write_text(json.dumps(metrics))
    model = dict(teacher=dict(start_iter=start_iter)) if start_iter is not None else dict()
    return training_summary(str(tmp_path), str(log_dir), model)


def test_warm_up_start_against_the_adapted_model(tmp_path):
    lines = _run(tmp_path, [(100, 20.0), (200, 28.731), (300, 30.0), (400, 33.72)], 200)
    assert lines[0] == 'target mIoU by iteration: 100: 20.00, 200: 28.73, 300: 30.00, 400: 33.72'
    assert lines[1] == (
        'warm-up (before self-training, iteration 200): 28.73 -> adapted (iteration 400): '
        '33.72 mIoU (+4.99)'
    )
    assert lines[2] == (f'target mIoU (synthetic, 8 images): 33.72  -> {tmp_path / "metrics.json"}')


def test_no_warm_up_line_without_a_teacher_start_or_a_validation_before_it(tmp_path):
    assert len(_run(tmp_path / 'a', [(200, 1.0), (400, 2.0)], None)) == 2  # no teacher
    assert len(_run(tmp_path / 'b', [(300, 1.0), (400, 2.0)], 200)) == 2  # nothing before 200
    assert len(_run(tmp_path / 'c', [(100, 1.0), (200, 2.0)], 200)) == 2  # nothing after 200
    only = _run(tmp_path / 'd', [(400, 2.0)], None)
    assert len(only) == 1 and only[0].startswith('target mIoU (synthetic, 8 images): 2.00')


def test_history_and_summary_without_files(tmp_path):
    assert validation_history(str(tmp_path / 'missing.json')) == []
    assert training_summary(str(tmp_path), str(tmp_path), dict()) == []
    assert warm_up_line([], 200) is None
