"""Semi-supervised splits: fraction draws (reproducible, disjoint, class-balanced), UniMatch split
files, label-free unlabelled parts, crop-padding masks and independent CutMix partner draws."""

import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from tests.conftest import SHARED_CAMVID
from uda.data import MultiBranchDataset, MultiBranchInfiniteSampler, SemiSplit, split_indices
from uda.data.splits import class_presence_of, num_labeled_of, read_split_file, write_split_files
from uda.registry import DATASETS, MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
CAMVID_SEMI = os.path.join(ROOT, 'configs', '_base_', 'datasets', 'camvid_semi_128x128.py')


def _list_tree(tmp_path, n=12, size=(8, 10)):
    """n image/label pairs; image i holds class i % 5 and, for i == 7 only, class 6."""
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lbl').mkdir()
    lines = []
    for i in range(n):
        img = np.zeros((*size, 3), np.uint8)
        img[..., 0] = (10 * i) % 256
        img[..., 1] = np.arange(size[1])[None] * 7  # position-dependent: crops differ
        img[..., 2] = np.arange(size[0])[:, None] * 5
        Image.fromarray(img).save(tmp_path / 'img' / f'{i}.png')
        lbl = np.full(size, i % 5, np.uint8)
        if i == 7:
            lbl[0, 0] = 6
        Image.fromarray(lbl).save(tmp_path / 'lbl' / f'{i}.png')
        lines.append(f'img/{i}.png lbl/{i}.png')
    (tmp_path / 'all.txt').write_text('\n'.join(lines) + '\n')
    return dict(
        type='ListFileDataset', data_root=str(tmp_path), list_file='all.txt', protocol='camvid11'
    )


def test_fraction_counts_match_unimatch_splits():
    # LiheYoung/UniMatch splits/: Cityscapes 2975 -> 186 / 372 / 744 / 1488; Pascal 1464 -> 92.
    assert [num_labeled_of(2975, 1 / k) for k in (16, 8, 4, 2)] == [186, 372, 744, 1488]
    assert num_labeled_of(1464, 1 / 16) == 92 and num_labeled_of(367, 1 / 8) == 46
    with pytest.raises(ValueError, match='fraction'):
        num_labeled_of(10, 0.0)


def test_split_is_reproducible_by_seed_and_disjoint():
    a = split_indices(100, 10, seed=3)
    assert a == split_indices(100, 10, seed=3)
    assert a != split_indices(100, 10, seed=4)
    labeled, unlabeled = a
    assert len(labeled) == 10 and not set(labeled) & set(unlabeled)
    assert sorted(labeled + unlabeled) == list(range(100))


def test_class_balanced_split_labels_every_class():
    n, c = 200, 6
    presence = np.zeros((n, c), bool)
    presence[:, 0] = True
    presence[5, 5] = True  # one image holds the rare class
    presence[np.arange(0, n, 3), 1] = True
    random_hits = sum(5 in split_indices(n, 10, seed=s)[0] for s in range(20))
    assert random_hits < 10  # a random 1/20 draw usually misses it
    for seed in range(5):
        labeled, unlabeled = split_indices(n, 10, seed=seed, class_presence=presence)
        assert 5 in labeled and len(labeled) == 10
        assert sorted(labeled + unlabeled) == list(range(n))
        assert presence[labeled, 1].any()
    assert split_indices(n, 10, 1, presence) == split_indices(n, 10, 1, presence)


def test_semi_split_parts_disjoint_and_unlabelled_without_labels(tmp_path):
    ds = _list_tree(tmp_path)
    lab = SemiSplit(dataset=ds, part='labeled', fraction=1 / 4, seed=0)
    unl = SemiSplit(dataset=ds, part='unlabeled', fraction=1 / 4, seed=0)
    assert len(lab) == 3 and len(unl) == 9
    assert not {p for p, _ in lab.items} & {p for p, _ in unl.items}
    assert 'gt_sem_seg' in lab[0]['data_samples']
    assert 'gt_sem_seg' not in unl[0]['data_samples']  # no term can read them
    assert lab.metainfo['protocol'] == 'camvid11'


def test_semi_split_class_balanced_reads_labels(tmp_path):
    ds = _list_tree(tmp_path)
    presence = class_presence_of(DATASETS.build(ds), 11)
    assert presence[7, 6] and presence[:, 6].sum() == 1
    for seed in range(4):
        lab = SemiSplit(dataset=ds, part='labeled', num_labeled=2, seed=seed, class_balanced=True)
        assert any(p.endswith('/7.png') for p, _ in lab.items)  # the only image with class 6


def test_unimatch_split_files_read_as_they_are(tmp_path):
    ds = _list_tree(tmp_path)
    split = tmp_path / 'splits' / 'mine' / '1_4'
    split.mkdir(parents=True)
    (split / 'labeled.txt').write_text('img/3.png lbl/3.png\nimg/0.png lbl/0.png\n')
    (split / 'unlabeled.txt').write_text('img/5.png lbl/5.png\n')
    lab = SemiSplit(dataset=ds, part='labeled', split_dir=str(split))
    unl = SemiSplit(dataset=ds, part='unlabeled', split_dir=str(split))
    assert [os.path.basename(p) for p, _ in lab.items] == ['3.png', '0.png']  # file order
    assert [os.path.basename(p) for p, _ in unl.items] == ['5.png']
    (split / 'bad.txt').write_text('img/3.png lbl/3.png\nimg/99.png lbl/99.png\n')
    with pytest.raises(FileNotFoundError, match='img/99.png'):
        SemiSplit(dataset=ds, part='labeled', split_file=str(split / 'bad.txt'))
    with pytest.raises(ValueError, match='exactly one'):
        SemiSplit(dataset=ds, part='labeled', fraction=0.5, split_dir=str(split))
    with pytest.raises(FileNotFoundError, match='Split file not found'):
        read_split_file(str(split / 'missing.txt'))


def test_written_split_files_round_trip(tmp_path):
    ds = _list_tree(tmp_path)
    lab = SemiSplit(dataset=ds, part='labeled', fraction=1 / 3, seed=2)
    full = DATASETS.build(ds)
    write_split_files(str(tmp_path / 's'), full.items, lab.indices, str(tmp_path))
    again = SemiSplit(dataset=ds, part='labeled', split_dir=str(tmp_path / 's'))
    assert sorted(again.indices) == sorted(lab.indices)
    assert len(read_split_file(str(tmp_path / 's' / 'unlabeled.txt'))) == 12 - len(lab)


def test_unlabelled_crop_padding_is_marked_invalid(tmp_path):
    ds = _list_tree(tmp_path, n=4, size=(8, 10))
    ds['pipeline'] = [
        dict(
            type='RandomCrop',
            height=12,
            width=12,
            pad_if_needed=True,
            pad_position='top_left',
            fill=0,
            fill_mask=255,
        ),
    ]
    unl = SemiSplit(dataset=ds, part='unlabeled', num_labeled=1)
    s = unl[0]['data_samples']
    assert s['img_shape'] == (12, 12) and s['valid_mask'].dtype == torch.bool
    assert s['valid_mask'][:8, :10].all() and not s['valid_mask'][8:].any()
    assert not s['valid_mask'][:, 10:].any()
    # Batching pads it with False, like the image (SegDataPreprocessor, size divisor 16).
    pre = MODELS.build(dict(type='SegDataPreprocessor', size_divisor=16))
    batch = pre(dict(inputs=[unl[0]['inputs']], data_samples=[unl[0]['data_samples']]))
    vm = batch['data_samples'][0]['valid_mask']
    assert vm.shape == (16, 16) and vm[:8, :10].all() and vm.sum() == 80


def test_cutmix_partner_branch_draws_independently(tmp_path):
    ds = _list_tree(tmp_path, n=40)
    split = dict(fraction=1 / 4, seed=0)
    mb = MultiBranchDataset(
        dict(
            labeled=dict(type='SemiSplit', dataset=ds, part='labeled', **split),
            unlabeled=dict(type='SemiSplit', dataset=ds, part='unlabeled', seed_offset=1, **split),
            unlabeled_mix=dict(
                type='SemiSplit', dataset=ds, part='unlabeled', seed_offset=2, **split
            ),
        )
    )
    it = iter(MultiBranchInfiniteSampler(mb, seed=0))
    draws = [next(it) for _ in range(30)]
    same = sum(u == m for _, u, m in draws)
    assert same < 5  # two streams over 30 images, not one stream twice
    assert sorted(m for _, _, m in draws) == list(range(30))  # one epoch of the partner stream


def test_branch_seed_offsets_decorrelate_augmentation(tmp_path):
    ds = _list_tree(tmp_path, n=6, size=(16, 16))
    ds['pipeline'] = [dict(type='RandomCrop', height=4, width=4)]
    torch.manual_seed(0)
    a = SemiSplit(dataset=ds, part='unlabeled', num_labeled=1, seed_offset=1)
    b = SemiSplit(dataset=ds, part='unlabeled', num_labeled=1, seed_offset=2)
    c = SemiSplit(dataset=ds, part='unlabeled', num_labeled=1, seed_offset=1)
    # The same image through each: equal offsets crop alike, different offsets differently.
    assert a[0]['inputs'].equal(c[0]['inputs'])
    imgs_a = torch.stack([a[0]['inputs'] for _ in range(8)])
    imgs_b = torch.stack([b[0]['inputs'] for _ in range(8)])
    assert not imgs_a.equal(imgs_b)


@pytest.mark.slow  # reads the 367 label files three times (~10 s)
@pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHARED_CAMVID, 'train.txt')),
    reason=f'CamVid not found at {os.path.abspath(SHARED_CAMVID)} (shared data is optional)',
)
def test_camvid_semi_config_split(monkeypatch):
    monkeypatch.setenv('CAMVID_ROOT', os.path.abspath(SHARED_CAMVID))
    cfg = Config.fromfile(CAMVID_SEMI)
    lab = DATASETS.build(cfg.labeled)
    unl = DATASETS.build(cfg.unlabeled)
    assert (len(lab), len(unl)) == (46, 321)
    presence = class_presence_of(lab.dataset, 11)
    assert presence[lab.indices].any(0).all()  # every class labelled somewhere
    assert not {p for p, _ in lab.items} & {p for p, _ in unl.items}
