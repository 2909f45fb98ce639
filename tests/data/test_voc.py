"""Pascal VOC 2012 + SBD in the official layouts, and UniMatch's Pascal split files on them."""

import os

import numpy as np
import pytest
from PIL import Image

from uda.data import SemiSplit, VOCDataset

IDS = ['2007_000032', '2007_000039', '2008_000123', '2011_003000']


def _palette_png(arr: np.ndarray, path) -> None:
    im = Image.fromarray(arr, mode='P')
    im.putpalette([v for c in range(256) for v in (c, 255 - c, c // 2)])
    im.save(path)


def _voc_tree(root, with_aug=True):
    """A tiny VOC2012 tree: official palette labels for 3 images, SBD grey labels for all 4."""
    for d in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug', 'ImageSets/Segmentation'):
        os.makedirs(root / d, exist_ok=True)
    for k, i in enumerate(IDS):
        Image.fromarray(np.full((6, 8, 3), 30 * k, np.uint8)).save(root / 'JPEGImages' / f'{i}.jpg')
        lbl = np.zeros((6, 8), np.uint8)
        lbl[2:4, 2:6] = k + 1  # an object of class k + 1
        lbl[1, :] = 255  # VOC's object boundary
        if k < 3:
            _palette_png(lbl, root / 'SegmentationClass' / f'{i}.png')
        if with_aug:
            Image.fromarray(lbl).save(root / 'SegmentationClassAug' / f'{i}.png')
    sets = root / 'ImageSets' / 'Segmentation'
    (sets / 'train.txt').write_text('\n'.join(IDS[:2]) + '\n')
    (sets / 'val.txt').write_text(IDS[2] + '\n')
    (sets / 'trainaug.txt').write_text('\n'.join(IDS) + '\n')
    return root


def test_official_palette_labels_decode_to_class_ids(tmp_path):
    ds = VOCDataset(data_root=str(_voc_tree(tmp_path)), split='train')
    assert len(ds) == 2 and ds.metainfo['protocol'] == 'voc21'
    assert len(ds.metainfo['classes']) == 21
    gt = ds[1]['data_samples']['gt_sem_seg']
    assert gt[3, 3] == 2 and gt[0, 0] == 0 and (gt[1] == 255).all()
    assert ds[0]['inputs'].shape == (3, 6, 8)


def test_trainaug_reads_sbd_labels(tmp_path):
    root = _voc_tree(tmp_path)
    ds = VOCDataset(data_root=str(root), split='trainaug', label_dir='SegmentationClassAug')
    assert len(ds) == 4 and ds[3]['data_samples']['gt_sem_seg'][2, 2] == 4
    with pytest.raises(FileNotFoundError, match='SegmentationClassAug'):
        VOCDataset(data_root=str(root), split='trainaug')  # 2011_003000 has no official label
    with pytest.raises(FileNotFoundError, match="split='missing'"):
        VOCDataset(data_root=str(root), split='missing')


def test_unimatch_pascal_split_files_match_images(tmp_path):
    root = _voc_tree(tmp_path)
    # UniMatch's lines name its own augmented folder "SegmentationClass" (LiheYoung/UniMatch
    # splits/pascal/*): matched by the image column, labels from label_dir.
    split = tmp_path / 'splits' / 'pascal' / '1_2'
    split.mkdir(parents=True)
    (split / 'labeled.txt').write_text(
        'JPEGImages/2011_003000.jpg SegmentationClass/2011_003000.png\n'
        'JPEGImages/2007_000039.jpg SegmentationClass/2007_000039.png\n'
    )
    (split / 'unlabeled.txt').write_text(
        'JPEGImages/2007_000032.jpg SegmentationClass/2007_000032.png\n'
        'JPEGImages/2008_000123.jpg SegmentationClass/2008_000123.png\n'
    )
    ds = dict(
        type='VOCDataset', data_root=str(root), split='trainaug', label_dir='SegmentationClassAug'
    )
    lab = SemiSplit(dataset=ds, part='labeled', split_dir=str(split))
    unl = SemiSplit(dataset=ds, part='unlabeled', split_dir=str(split))
    assert lab[0]['data_samples']['gt_sem_seg'][2, 2] == 4  # 2011_003000, class 4
    assert 'gt_sem_seg' not in unl[0]['data_samples']
    assert len(lab) == 2 and len(unl) == 2
