"""benchmarks/same_numbers.py: identical only if losses, mIoU and weights all are."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'same_numbers', os.path.join(ROOT, 'benchmarks', 'same_numbers.py')
)
same_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_numbers)


def fake_run(wd, losses, miou, weights, history=None):
    """A finished run's files: scalars.json, metrics.json, a checkpoint and last_checkpoint."""
    vis = os.path.join(wd, '20261208_000000', 'vis_data')
    os.makedirs(vis)
    with open(os.path.join(vis, 'scalars.json'), 'w') as f:
        for i, loss in enumerate(losses, 1):
            f.write(json.dumps({'loss': loss, 'iter': i, 'step': i}) + '\n')
        f.write(json.dumps({'mIoU': miou, 'step': len(losses)}) + '\n')  # a validation row
    with open(os.path.join(wd, 'metrics.json'), 'w') as f:
        json.dump({'mIoU': miou}, f)
    ckpt = os.path.join(wd, f'iter_{len(losses)}.pth')
    torch.save({'state_dict': weights, 'message_hub': history or {}}, ckpt)
    with open(os.path.join(wd, 'last_checkpoint'), 'w') as f:
        f.write(ckpt)


def weights(shift=0.0):
    return {'w': torch.arange(6.0).view(2, 3) + shift, 'b': torch.zeros(2), 'n': torch.tensor(3)}


def test_identical_runs(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    fake_run(a, [1.0, 0.5, 0.25], 30.5, weights())
    fake_run(b, [1.0, 0.5, 0.25], 30.5, weights())
    r = same_numbers.compare(a, b)
    assert r['identical'] and r['iters_compared'] == 3 and r['weights_compared'] == 3
    assert r['max_loss_diff'] == 0 and r['max_weight_diff'] == 0
    assert r['first_loss_diff_iter'] is None


def test_a_loss_that_parts_names_its_iteration(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    fake_run(a, [1.0, 0.5, 0.25], 30.5, weights())
    fake_run(b, [1.0, 0.5, 0.26], 30.5, weights())
    r = same_numbers.compare(a, b)
    assert not r['identical']
    assert r['first_loss_diff_iter'] == 3 and r['max_loss_diff'] == pytest.approx(0.01)


def test_a_weight_or_a_score_that_differs_is_not_identical(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    fake_run(a, [1.0, 0.5], 30.5, weights())
    fake_run(b, [1.0, 0.5], 30.5, weights(1e-7))
    fake_run(c, [1.0, 0.5], 30.6, weights())
    r = same_numbers.compare(a, b)
    assert not r['identical'] and 0 < r['max_weight_diff'] < 1e-6
    assert not same_numbers.compare(a, c)['identical']


def test_renamed_weights_are_listed_not_compared(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    old = weights()
    new = dict(weights())
    new['insertions.gate'] = new.pop('b')
    fake_run(a, [1.0], 30.5, old)
    fake_run(b, [1.0], 30.5, new)
    r = same_numbers.compare(a, b)
    assert r['weights_compared'] == 2 and r['weights_only_in_one'] == ['b', 'insertions.gate']
    assert r['identical']  # every weight both sides have is equal
    assert '(+2 renamed)' in same_numbers.table({'CAM': r}, 'abc123', 3)


def test_a_run_that_failed_on_one_side_is_not_identical(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    fake_run(a, [1.0], 30.5, weights())
    os.makedirs(b)
    r = same_numbers.compare(a, b)
    assert not r['identical'] and r['iters_compared'] == 0 and r['mIoU_tree'] is None


def test_run_arguments():
    assert same_numbers.parse_run(['SAC', 'new.py', 'old.py', 'a=1']) == (
        'SAC',
        'new.py',
        'old.py',
        ['a=1'],
    )
    assert same_numbers.parse_run(['ABN', 'same.py', 'a=1']) == (
        'ABN',
        'same.py',
        'same.py',
        ['a=1'],
    )
    with pytest.raises(SystemExit, match='NAME CONFIG'):
        same_numbers.parse_run(['ABN', 'a=1'])


def test_an_unknown_revision_is_one_error(tmp_path):
    with pytest.raises(SystemExit, match='not a commit'):
        same_numbers.worktree('no-such-revision-xyz', str(tmp_path / 'rev'))
