"""Cityscapes in its official layout: leftImg8bit/ + gtFine/*_gtFine_labelIds.png."""

import numpy as np
import pytest
from PIL import Image

from uda.data import CityscapesDataset

# Official Cityscapes labelId -> trainId (cityscapesscripts/helpers/labels.py); others -> 255.
CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
H, W = 8, 34
FRAMES = {
    'train': [
        ('aachen', 'aachen_000000_000019'),
        ('aachen', 'aachen_000001_000019'),
        ('bremen', 'bremen_000000_000019'),
    ],
    'val': [('frankfurt', 'frankfurt_000000_000294')],
}


def _write_cityscapes(root, label=None):
    rng = np.random.default_rng(0)
    ids = np.tile(np.arange(34, dtype=np.uint8), (H, 1)) if label is None else label
    for split, frames in FRAMES.items():
        for city, stem in frames:
            img_dir = root / 'leftImg8bit' / split / city
            lbl_dir = root / 'gtFine' / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            lbl_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
                img_dir / f'{stem}_leftImg8bit.png'
            )
            Image.fromarray(ids, mode='L').save(lbl_dir / f'{stem}_gtFine_labelIds.png')
            # The other gtFine files of the official archive must not be picked up.
            Image.fromarray(np.zeros((H, W, 4), np.uint8)).save(
                lbl_dir / f'{stem}_gtFine_color.png'
            )
            Image.fromarray(np.full((H, W), 26000, np.uint16)).save(
                lbl_dir / f'{stem}_gtFine_instanceIds.png'
            )
            (lbl_dir / f'{stem}_gtFine_polygons.json').write_text('{}')
    return root


def test_official_table_and_pairing(tmp_path):
    ds = CityscapesDataset(data_root=str(_write_cityscapes(tmp_path)), split='train')
    assert len(ds) == 3
    for img, lbl in ds.items:
        assert img.endswith('_leftImg8bit.png') and lbl.endswith('_gtFine_labelIds.png')
        assert (
            img.split('/')[-1][: -len('_leftImg8bit.png')]
            == lbl.split('/')[-1][: -len('_gtFine_labelIds.png')]
        )
    gt = ds[2]['data_samples']['gt_sem_seg']
    assert gt[0].tolist() == [CITYSCAPES_TRAIN_IDS.get(i, 255) for i in range(34)]
    assert (gt == gt[0]).all()
    assert len(CityscapesDataset(data_root=str(tmp_path), split='val')) == 1
    assert len(CityscapesDataset(data_root=str(tmp_path), cities=['bremen'])) == 1


def test_resize_to_1024x512_nearest(tmp_path):
    check = np.zeros((H, W), np.uint8)
    check[::2, ::2] = check[1::2, 1::2] = 7  # road / unlabeled checkerboard
    check[check == 0] = 26  # car
    ds = CityscapesDataset(
        data_root=str(_write_cityscapes(tmp_path, check)), split='val', resize=(512, 1024)
    )
    s = ds[0]
    assert s['inputs'].shape == (3, 512, 1024)
    gt = s['data_samples']['gt_sem_seg']
    assert gt.shape == (512, 1024) and set(gt.unique().tolist()) == {0, 13}
    assert s['data_samples']['ori_shape'] == (512, 1024)


def test_unlabelled_mode_reads_images_only(tmp_path):
    root = tmp_path / 'cs'
    _write_cityscapes(root)
    import shutil

    shutil.rmtree(root / 'gtFine')
    ds = CityscapesDataset(data_root=str(root), split='train', with_label=False)
    assert len(ds) == 3 and all(lbl is None for _, lbl in ds.items)
    assert 'gt_sem_seg' not in ds[0]['data_samples']
    with pytest.raises(
        FileNotFoundError,
        match=r'Cityscapes label folder .*gtFine/train is not '
        r'a folder.*with_label=False',
    ):
        CityscapesDataset(data_root=str(root), split='train')


def test_wrong_root_and_missing_split(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r'Cityscapes root .*nope is not a folder.*'
        r'CITYSCAPES_ROOT',
    ):
        CityscapesDataset(data_root=str(tmp_path / 'nope'))
    _write_cityscapes(tmp_path)
    with pytest.raises(
        FileNotFoundError,
        match=r"split='test'\) .*leftImg8bit/test is not a "
        r"folder.*holds \['train', 'val'\]",
    ):
        CityscapesDataset(data_root=str(tmp_path), split='test')


def test_unpaired_label(tmp_path):
    _write_cityscapes(tmp_path)
    (tmp_path / 'leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png').unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r'1 label\(s\) in .*gtFine/train have no image '
        r'.*aachen_000001_000019_gtFine_labelIds\.png',
    ):
        CityscapesDataset(data_root=str(tmp_path), split='train')
    assert len(CityscapesDataset(data_root=str(tmp_path), skip_unpaired=True)) == 2


def test_labelid_outside_0_33(tmp_path):
    bad = np.full((H, W), 7, np.uint8)
    bad[0, 0] = 255
    ds = CityscapesDataset(data_root=str(_write_cityscapes(tmp_path, bad)), split='val')
    with pytest.raises(
        ValueError,
        match=r'frankfurt_000000_000294_gtFine_labelIds\.png has raw '
        r'ids \[255\]',
    ):
        ds[0]


def test_truncated_image(tmp_path):
    _write_cityscapes(tmp_path)
    path = tmp_path / 'leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png'
    path.write_bytes(path.read_bytes()[:100])
    ds = CityscapesDataset(data_root=str(tmp_path), split='val')
    with pytest.raises(OSError, match=r'Cannot read image .*frankfurt_000000_000294'):
        ds[0]
