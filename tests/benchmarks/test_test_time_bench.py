"""benchmarks/test_time.py: the continual synthetic stream and its per-condition batches."""

from __future__ import annotations

import importlib.util
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'tta_bench', os.path.join(ROOT, 'benchmarks', 'test_time.py')
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_synthetic_stream_visits_every_condition_in_order_with_labels():
    items = list(bench.synthetic_stream(seed=0, per_condition=3))
    assert [c for c, _ in items] == [c for c in bench.CONDITIONS['synthetic'] for _ in range(3)]
    img = {c: it['inputs'].float().mean() for c, it in items[::3]}
    assert img['dusk'] < 0.6 * img['target']  # darker
    assert items[0][1]['data_samples']['gt_sem_seg'].shape == (96, 192)
    # Same seed, same stream; another seed, other scenes.
    again = next(bench.synthetic_stream(seed=0, per_condition=3))[1]['inputs']
    other = next(bench.synthetic_stream(seed=1, per_condition=3))[1]['inputs']
    assert torch.equal(again, items[0][1]['inputs']) and not torch.equal(other, again)


def test_batches_never_mix_conditions():
    items = [('a', dict(inputs=i, data_samples={})) for i in range(5)] + [
        ('b', dict(inputs=i, data_samples={})) for i in range(3)
    ]
    got = [(c, len(b['inputs'])) for c, b in bench.batches(iter(items), 4)]
    assert got == [('a', 4), ('a', 1), ('b', 3)]
