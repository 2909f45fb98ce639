"""UnlabelledImages: several datasets as one unlabelled set; two views per drawn image."""

from __future__ import annotations

import pytest
import torch

from uda.data import MultiBranchDataset, SyntheticDataset, UnlabelledImages

SRC = dict(type='SyntheticDataset', style='source', num_samples=3, seed=0, size=(32, 64))
TGT = dict(type='SyntheticDataset', style='target', num_samples=2, seed=0, size=(32, 64))


def test_concatenates_in_order_without_labels():
    ds = UnlabelledImages([SRC, TGT])
    assert len(ds) == 5
    assert all(not d.with_label for d in ds.datasets)
    direct = SyntheticDataset(style='target', num_samples=2, seed=0, size=(32, 64))
    s = ds[4]
    assert torch.equal(s['inputs'], direct[1]['inputs'])
    assert s['data_samples']['dataset_index'] == 1 and 'gt_sem_seg' not in s['data_samples']
    assert torch.equal(ds[-1]['inputs'], s['inputs'])
    with pytest.raises(IndexError):
        ds[5]


def test_labels_of_built_datasets_are_dropped():
    labelled = SyntheticDataset(style='source', num_samples=2, seed=0, size=(32, 64))
    assert 'gt_sem_seg' in labelled[0]['data_samples']
    assert 'gt_sem_seg' not in UnlabelledImages([labelled])[0]['data_samples']


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match='at least one dataset'):
        UnlabelledImages([])
    with pytest.raises(ValueError, match=r'datasets\[0\].*empty'):
        UnlabelledImages([[]])  # an empty (built) dataset


def test_two_views_of_one_image_differ():
    crop = [dict(type='RandomResizedCrop', size=(24, 24), scale=(0.2, 1.0))]
    ds = MultiBranchDataset(
        dict(
            images=dict(
                dataset=dict(type='UnlabelledImages', datasets=[SRC, TGT]),
                views=dict(query=crop, key=crop),
            )
        )
    )
    assert ds.batch_branches == ['images.query', 'images.key']
    for i in range(3):
        s = ds[i]
        q, k = s['images.query']['inputs'], s['images.key']['inputs']
        assert q.shape == k.shape == (3, 24, 24)
        assert not torch.equal(q, k)
