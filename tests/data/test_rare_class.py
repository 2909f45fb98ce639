"""Rare-class sampling: class probabilities (golden), the min-pixel image rule, the re-crop
rule, the statistics file and tool."""

import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from torch.utils.data import Dataset

from uda.data.rare_class import (
    RareClassCrop,
    RareClassSampler,
    decode_index,
    encode_index,
    load_rcs_stats,
    rcs_class_probabilities,
)

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')


def test_class_probabilities_golden():
    # f = (0.7, 0.2, 0.1); class 3 has no pixel and is not drawn.
    counts = np.array([[500, 100, 0, 0], [200, 100, 100, 0]])
    classes, p = rcs_class_probabilities(counts, temperature=0.1)
    z = np.exp([3.0, 8.0, 9.0])  # (1 - f) / T
    assert classes.tolist() == [0, 1, 2]
    assert np.allclose(p, z / z.sum())
    _, p = rcs_class_probabilities(counts, temperature=0.01)  # DAFormer's T
    z = np.exp([-60.0, -10.0, 0.0])
    assert np.allclose(p, z / z.sum())


class Scripted(Dataset):
    """Image i's k-th load holds ``pixels[i][k]`` pixels of class 1 (class 0 elsewhere)."""

    def __init__(self, pixels):
        self.pixels, self.loads = pixels, [0] * len(pixels)

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        k = self.loads[i]
        self.loads[i] += 1
        gt = torch.zeros(100, 100, dtype=torch.long)
        gt.view(-1)[: self.pixels[i][min(k, len(self.pixels[i]) - 1)]] = 1
        return dict(inputs=torch.zeros(3, 100, 100), data_samples=dict(gt_sem_seg=gt, load=k))


def test_recrop_until_the_crop_holds_enough_pixels():
    ds = Scripted([[100, 1500, 1501, 5000], [0]])
    wrapped = RareClassCrop(ds, min_pixels=3000, min_crop_ratio=0.5, max_recrops=10)
    s = wrapped[encode_index(0, 1, 2)]
    # > 3000 * 0.5 = 1500 pixels of class 1: the third load (1501 pixels) is kept.
    assert s['data_samples']['load'] == 2 and s['data_samples']['rcs_class'] == 1
    s = wrapped[encode_index(1, 1, 2)]  # never enough: 1 load + 10 re-crops, the last kept
    assert ds.loads[1] == 11 and s['data_samples']['load'] == 10
    s = wrapped[1]  # a plain index: one load, no class
    assert ds.loads[1] == 12 and 'rcs_class' not in s['data_samples']
    no_recrop = RareClassCrop(Scripted([[0]]), min_crop_ratio=0.0)
    no_recrop[encode_index(0, 1, 1)]
    assert no_recrop.dataset.loads == [1]


def test_index_encoding_round_trip():
    assert decode_index(encode_index(3, 0, 5), 5) == (3, 0)
    assert decode_index(encode_index(4, 18, 5), 5) == (4, 18)
    assert decode_index(2, 5) == (2, None)


def _stats_file(tmp_path, counts):
    path = tmp_path / 'rcs.json'
    entries = [dict(index=i, img_path=f'#{i}', counts=c) for i, c in enumerate(counts)]
    path.write_text(json.dumps(dict(num_classes=len(counts[0]), images=entries)))
    return str(path)


COUNTS = [[5000, 0, 0], [4000, 2000, 0], [4000, 3500, 10], [100, 3001, 3000]]


def test_sampler_draws_images_above_min_pixels_of_the_drawn_class(tmp_path):
    ds = RareClassCrop(Scripted([[0]] * 4), min_pixels=3000)
    sampler = RareClassSampler(ds, _stats_file(tmp_path, COUNTS), temperature=0.1, seed=0)
    # Class 2 has no image with > 3000 pixels (3000 is not more): not drawn.
    assert sorted(sampler.images_of_class) == [0, 1]
    assert sampler.images_of_class[1].tolist() == [2, 3]  # 2000 px (image 1) is too few
    it = iter(sampler)
    draws = [decode_index(next(it), 4) for _ in range(2000)]
    assert all(COUNTS[i][c] > 3000 for i, c in draws)
    # f over classes with pixels, then renormalised over the classes kept.
    total = np.array(COUNTS).sum(0)
    z = np.exp((1 - total / total.sum()) / 0.1)[:2]
    share1 = np.mean([c == 1 for _, c in draws])
    assert share1 == pytest.approx(z[1] / z.sum(), abs=0.03)
    images = np.bincount([i for i, c in draws if c == 1], minlength=4)
    assert images[2] == pytest.approx(images[3], rel=0.2)  # uniform among eligible images
    again = iter(RareClassSampler(ds, _stats_file(tmp_path, COUNTS), temperature=0.1, seed=0))
    assert [next(again) for _ in range(50)] == [encode_index(i, c, 4) for i, c in draws[:50]]


def test_sampler_in_a_multi_branch_dataset_and_bad_settings(tmp_path):
    from uda.data.multi_branch import MultiBranchDataset

    ds = MultiBranchDataset(
        dict(source=RareClassCrop(Scripted([[0]] * 4)), target=Scripted([[0]] * 3))
    )
    it = iter(RareClassSampler(ds, _stats_file(tmp_path, COUNTS), seed=0))
    src, tgt = zip(*[next(it) for _ in range(300)])
    assert all(COUNTS[i][c] > 3000 for i, c in (decode_index(k, 4) for k in src))
    assert sorted(set(tgt)) == [0, 1, 2]  # the target streams as usual
    sample = ds[next(it)]
    assert 'rcs_class' in sample['source']['data_samples']
    with pytest.raises(ValueError, match='same value'):
        RareClassSampler(ds, _stats_file(tmp_path, COUNTS), min_pixels=1000)
    with pytest.raises(KeyError, match='branches'):
        RareClassSampler(ds, _stats_file(tmp_path, COUNTS), branch='labeled')


def test_bad_stats_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='compute_rcs_stats'):
        load_rcs_stats(str(tmp_path / 'missing.json'), 3)
    path = _stats_file(tmp_path, COUNTS)
    with pytest.raises(ValueError, match='outside the source dataset'):
        load_rcs_stats(path, 3)
    with pytest.raises(ValueError, match='have no statistics'):
        load_rcs_stats(path, 5)


def test_tool_counts_source_labels_of_a_list_file_dataset(tmp_path):
    labels = [np.zeros((6, 8), np.uint8), np.full((6, 8), 255, np.uint8)]
    labels[0][:2] = 1  # 16 px of class 1, 32 of class 0
    labels[1][:, :3] = 2  # 18 px of class 2, the rest ignore
    lines = []
    for i, lbl in enumerate(labels):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / f'{i}.png')
        Image.fromarray(lbl).save(tmp_path / f'{i}_gt.png')
        lines.append(f'{i}.png {i}_gt.png')
    (tmp_path / 'train.txt').write_text('\n'.join(lines))
    source = dict(
        type='ListFileDataset',
        data_root=str(tmp_path),
        list_file='train.txt',
        pipeline=[dict(type='RandomCrop', height=4, width=4)],
    )
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='MultiBranchDataset',
                    branches=dict(source=dict(type='RareClassCrop', dataset=source)),
                )
            )
        )
    )
    cfg_path, out = str(tmp_path / 'cfg.py'), str(tmp_path / 'stats' / 'rcs.json')
    cfg.dump(cfg_path)
    argv = sys.argv
    sys.argv = ['compute_rcs_stats.py', cfg_path, '--out', out]
    try:
        runpy.run_path(os.path.join(ROOT, 'tools', 'compute_rcs_stats.py'), run_name='__main__')
    finally:
        sys.argv = argv
    counts = load_rcs_stats(out, 2)  # whole images: the RandomCrop is not applied
    assert counts[:, :3].tolist() == [[32, 16, 0], [0, 0, 18]]
    assert counts.shape == (2, 19) and counts[:, 3:].sum() == 0
    sys.argv = ['compute_rcs_stats.py', cfg_path, '--out', out, '--branch', 'target']
    try:
        with pytest.raises(KeyError, match='pass --branch'):
            runpy.run_path(os.path.join(ROOT, 'tools', 'compute_rcs_stats.py'), run_name='__main__')
    finally:
        sys.argv = argv


def test_runner_trains_on_rare_class_crops(tmp_path):
    from mmengine.runner import Runner

    from tests.conftest import toy_runner_cfg
    from uda.registry import DATASETS

    cfg = toy_runner_cfg(str(tmp_path / 'work'))
    branches = cfg['train_dataloader']['dataset']['branches']
    src = dict(branches['source'], pipeline=[])
    whole = DATASETS.build(src)
    counts = [
        torch.bincount(whole[i]['data_samples']['gt_sem_seg'].flatten(), minlength=256)[:19]
        for i in range(len(whole))
    ]
    stats = _stats_file(tmp_path, [c.tolist() for c in counts])
    src['pipeline'] = [dict(type='RandomCrop', height=16, width=32)]
    branches['source'] = dict(type='RareClassCrop', dataset=src, min_pixels=50)
    cfg['train_dataloader']['sampler'] = dict(
        type='RareClassSampler', stats_file=stats, min_pixels=50
    )
    runner = Runner.from_cfg(cfg)
    batch = next(iter(runner.train_dataloader))
    crops = batch['source']['data_samples']
    assert all(s['gt_sem_seg'].shape == (16, 32) and 'rcs_class' in s for s in crops)
    runner.train()


def test_tool_counts_at_the_label_files_resolution_by_default(tmp_path):
    """DAFormer / MIC count min_pixels on the original labels (convert_datasets/gta.py), not
    after the dataset's resize: --at file (default) vs --at dataset on a 2x downscaled set."""
    label = np.zeros((8, 8), np.uint8)
    label[:2] = 1  # 16 px of class 1 at file resolution, 4 after resizing to 4x4
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / '0.png')
    Image.fromarray(label).save(tmp_path / '0_gt.png')
    (tmp_path / 'train.txt').write_text('0.png 0_gt.png')
    source = dict(
        type='ListFileDataset', data_root=str(tmp_path), list_file='train.txt', resize=(4, 4)
    )
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(type='MultiBranchDataset', branches=dict(source=source))
            )
        )
    )
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    argv = sys.argv
    counts = {}
    for at in (None, 'dataset'):
        out = str(tmp_path / f'rcs_{at}.json')
        sys.argv = ['compute_rcs_stats.py', cfg_path, '--out', out] + (['--at', at] if at else [])
        try:
            runpy.run_path(os.path.join(ROOT, 'tools', 'compute_rcs_stats.py'), run_name='__main__')
        finally:
            sys.argv = argv
        counts[at] = load_rcs_stats(out, 1)[0, :2].tolist()
    assert counts[None] == [48, 16] and counts['dataset'] == [12, 4]
