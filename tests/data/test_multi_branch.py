import itertools

import pytest
import torch

from uda.data import MultiBranchDataset, MultiBranchInfiniteSampler, uda_collate
from uda.data.pipelines import build_pipeline


def _ds(n_src=3, n_tgt=5):
    return MultiBranchDataset(branches=dict(
        source=dict(type='SyntheticDataset', style='source', num_samples=n_src, size=(16, 32)),
        target=dict(type='SyntheticDataset', style='target', num_samples=n_tgt, size=(16, 32),
                    with_label=False)))


def test_branches_are_drawn_independently_and_cover_each_dataset():
    sampler = MultiBranchInfiniteSampler(_ds(), shuffle=True, seed=0)
    idx = list(itertools.islice(iter(sampler), 15))
    src, tgt = [i for i, _ in idx], [j for _, j in idx]
    # Each branch is a sequence of full permutations of its own dataset.
    assert sorted(src[:3]) == [0, 1, 2] and sorted(src[3:6]) == [0, 1, 2]
    assert sorted(tgt[:5]) == [0, 1, 2, 3, 4] and sorted(tgt[5:10]) == [0, 1, 2, 3, 4]
    again = list(itertools.islice(iter(MultiBranchInfiniteSampler(_ds(), seed=0)), 15))
    assert again == idx
    other = list(itertools.islice(iter(MultiBranchInfiniteSampler(_ds(), seed=1)), 15))
    assert other != idx


def test_ranks_get_disjoint_shards(monkeypatch):
    streams = []
    for rank in range(2):
        monkeypatch.setattr('uda.data.multi_branch.get_dist_info', lambda r=rank: (r, 2))
        s = MultiBranchInfiniteSampler(_ds(4, 4), shuffle=True, seed=3)
        streams.append(list(itertools.islice(iter(s), 2)))
    src = [i for st in streams for i, _ in st]
    assert sorted(src) == [0, 1, 2, 3]


def test_dataset_and_collate_give_branch_batches():
    ds = _ds()
    batch = uda_collate([ds[(0, 1)], ds[(2, 4)]])
    assert set(batch) == {'source', 'target'}
    assert len(batch['source']['inputs']) == 2 and batch['source']['inputs'][0].dtype == torch.uint8
    assert 'gt_sem_seg' in batch['source']['data_samples'][0]
    assert 'gt_sem_seg' not in batch['target']['data_samples'][0]


def test_pipeline_keeps_mask_aligned_and_pads_with_ignore():
    import numpy as np
    pipe = build_pipeline([dict(type='PadIfNeeded', min_height=8, min_width=8, border_mode=0,
                                fill=0, fill_mask=255),
                           dict(type='HorizontalFlip', p=1.0)])
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    mask = np.tile(np.arange(6, dtype=np.uint8), (4, 1))
    out = pipe(image=img, mask=mask)
    assert out['image'].shape == (8, 8, 3) and out['mask'].shape == (8, 8)
    assert (out['mask'] == 255).sum() == 64 - 24
    # flipped: mask columns reversed where the image is
    rows = out['mask'][(out['mask'] != 255).any(1)]
    cols = rows[:, (rows != 255).any(0)]
    assert cols[0].tolist() == [5, 4, 3, 2, 1, 0]


def test_pipeline_bad_argument_names_the_transform():
    with pytest.raises(ValueError, match='RandomCrop'):
        build_pipeline([dict(type='RandomCrop', hieght=4, width=4)])
