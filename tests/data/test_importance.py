"""Importance sampling: P(image | class) golden values, uniform fallback, the sampler, the tool."""

import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.conftest import toy_runner_cfg
from uda.data.importance import ImportanceSampler, class_image_probabilities, load_class_counts
from uda.registry import DATASETS, MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')


def test_probabilities_golden():
    counts = np.array([[30.0, 0.0], [10.0, 5.0], [0.0, 15.0], [0.0, 0.0]])
    p = class_image_probabilities(counts, prior=0.25)
    n = 4
    share0 = np.array([0.75, 0.25, 0.0, 0.0])
    share1 = np.array([0.0, 0.25, 0.75, 0.0])
    assert np.allclose(p[0], 0.25 / n + 0.75 * share0)
    assert np.allclose(p[1], 0.25 / n + 0.75 * share1)
    assert np.allclose(p.sum(1), 1.0)


def test_images_without_statistics_are_uniform_and_absent_classes_skipped():
    counts = np.array([[10.0, 0.0, 0.0], [np.nan, np.nan, np.nan], [30.0, 0.0, 0.0]])
    p = class_image_probabilities(counts, prior=0.25)
    assert p.shape == (1, 3)  # classes 1 and 2 appear nowhere: not drawn
    raw = 0.25 / 3 + 0.75 * np.array([10 / 40, 1 / 3, 30 / 40])
    assert np.allclose(p[0], raw / raw.sum())


def _weights_file(tmp_path, counts):
    path = tmp_path / 'w.json'
    entries = [
        dict(index=i, img_path=f'#{i}', counts=c) for i, c in enumerate(counts) if c is not None
    ]
    path.write_text(json.dumps(dict(num_classes=len(counts[0]), images=entries)))
    return str(path)


def test_sampler_draws_rare_class_images_more_often(tmp_path):
    ds = DATASETS.build(
        dict(
            type='MultiBranchDataset',
            branches=dict(
                source=dict(type='SyntheticDataset', style='source', num_samples=5, size=(8, 8)),
                target=dict(
                    type='SyntheticDataset',
                    style='target',
                    num_samples=4,
                    size=(8, 8),
                    with_label=False,
                ),
            ),
        )
    )
    # Image 3 holds all pixels of the rare class 1.
    counts = [[100, 0], [100, 0], [100, 0], [10, 40]]
    sampler = ImportanceSampler(ds, _weights_file(tmp_path, counts), seed=0)
    it = iter(sampler)
    draws = [next(it) for _ in range(4000)]
    tgt = np.bincount([d[1] for d in draws], minlength=4) / 4000
    # P(3) = 0.5 * (0.0625 + 0.75 * 10/310) + 0.5 * (0.0625 + 0.75 * 1) = 0.4433
    assert tgt[3] == pytest.approx(0.5 * (0.0625 + 0.75 * 10 / 310) + 0.5 * 0.8125, abs=0.03)
    src = np.bincount([d[0] for d in draws], minlength=5) / 4000
    assert np.allclose(src, 0.2, atol=0.03)  # the source branch stays uniform


def test_bad_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='compute_is_weights'):
        load_class_counts(str(tmp_path / 'missing.json'), 3)
    path = _weights_file(tmp_path, [[1, 2], [3, 4], [5, 6]])
    with pytest.raises(ValueError, match='outside the target dataset'):
        load_class_counts(path, 2)


def test_tool_writes_counts_for_every_target_image(tmp_path):
    cfg = Config(toy_runner_cfg(str(tmp_path / 'work')))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'm.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'w.json')
    # In-process, so the ToySegmentor registered by conftest resolves.
    argv = sys.argv
    sys.argv = ['compute_is_weights.py', cfg_path, ckpt, '--out', out, '--device', 'cpu']
    try:
        runpy.run_path(os.path.join(ROOT, 'tools', 'compute_is_weights.py'), run_name='__main__')
    finally:
        sys.argv = argv
    with open(out) as f:
        data = json.load(f)
    assert data['num_classes'] == 19 and len(data['images']) == 4
    assert all(sum(e['counts']) == 32 * 64 for e in data['images'])
    counts = load_class_counts(out, 4)
    assert not np.isnan(counts).any()


def test_tool_rejects_a_checkpoint_of_another_model(tmp_path):
    """Statistics from a checkpoint with another class count fail instead of loading partially."""
    cfg = Config(toy_runner_cfg(str(tmp_path / 'work')))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    other = dict(cfg.model, segmentor=dict(type='ToySegmentor', num_classes=11))
    ckpt = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=MODELS.build(other).state_dict()), ckpt)
    argv = sys.argv
    sys.argv = [
        'compute_is_weights.py',
        cfg_path,
        ckpt,
        '--out',
        str(tmp_path / 'w.json'),
        '--device',
        'cpu',
    ]
    try:
        with pytest.raises(ValueError, match='does not fit the network built from'):
            runpy.run_path(
                os.path.join(ROOT, 'tools', 'compute_is_weights.py'), run_name='__main__'
            )
    finally:
        sys.argv = argv
    assert not (tmp_path / 'w.json').exists()
