"""GTA5 in its official layout: images/ + labels/ (palette PNGs of Cityscapes labelIds)."""

import numpy as np
import pytest
from PIL import Image

from uda.data import GTA5Dataset

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
H, W = 6, 34


def _labelids() -> np.ndarray:
    """Every labelId 0-33 once per row."""
    return np.tile(np.arange(34, dtype=np.uint8), (H, 1))


def _write_gta5(root, names=('00001', '00002'), label=None):
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'labels').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
            root / 'images' / f'{n}.png'
        )
        # GTA5 ships labels as 8-bit palette PNGs: the pixel values are the labelIds.
        lbl = Image.fromarray(_labelids() if label is None else label, mode='P')
        lbl.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
        lbl.save(root / 'labels' / f'{n}.png')
    return root


def test_labelids_map_to_trainids_exactly(tmp_path):
    ds = GTA5Dataset(data_root=str(_write_gta5(tmp_path)))
    assert len(ds) == 2
    with Image.open(tmp_path / 'labels' / '00001.png') as im:
        assert im.mode == 'P'
    gt = ds[0]['data_samples']['gt_sem_seg']
    expected = [CITYSCAPES_TRAIN_IDS.get(i, 255) for i in range(34)]
    assert gt.shape == (H, W) and (gt == gt[0]).all() and gt[0].tolist() == expected
    assert ds[0]['inputs'].shape == (3, H, W)


def test_resize_to_1280x720_keeps_ids(tmp_path):
    ds = GTA5Dataset(data_root=str(_write_gta5(tmp_path)), resize=(720, 1280))
    s = ds[1]
    assert s['inputs'].shape == (3, 720, 1280)
    gt = s['data_samples']['gt_sem_seg']
    assert gt.shape == (720, 1280)
    # Nearest neighbour: only ids of the table, never a blend of two neighbours.
    assert set(gt.unique().tolist()) == set(CITYSCAPES_TRAIN_IDS.values()) | {255}


def test_unlabelled_mode_needs_no_labels(tmp_path):
    _write_gta5(tmp_path)
    for f in (tmp_path / 'labels').iterdir():
        f.unlink()
    (tmp_path / 'labels').rmdir()
    ds = GTA5Dataset(data_root=str(tmp_path), with_label=False)
    assert len(ds) == 2 and 'gt_sem_seg' not in ds[0]['data_samples']


def test_wrong_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'GTA5 root .*nope is not a folder.*GTA5_ROOT'):
        GTA5Dataset(data_root=str(tmp_path / 'nope'))
    (tmp_path / 'imgs').mkdir()
    with pytest.raises(
        FileNotFoundError,
        match=r'GTA5 image folder .*images is not a folder. '
        r".* holds \['imgs'\]",
    ):
        GTA5Dataset(data_root=str(tmp_path))


def test_unpaired_files_fail_unless_asked(tmp_path):
    _write_gta5(tmp_path)
    (tmp_path / 'labels' / '00002.png').unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r'1 image\(s\) in .*images have no label in '
        r'.*labels, first: .*00002\.png.*skip_unpaired',
    ):
        GTA5Dataset(data_root=str(tmp_path))
    ds = GTA5Dataset(data_root=str(tmp_path), skip_unpaired=True)
    assert [p for p, _ in ds.items] == [str(tmp_path / 'images' / '00001.png')]


def test_label_id_outside_the_map(tmp_path):
    bad = _labelids()
    bad[2, 3] = 34
    ds = GTA5Dataset(data_root=str(_write_gta5(tmp_path, label=bad)))
    with pytest.raises(ValueError, match=r'00001\.png has raw ids \[34\].*cityscapes_labelids'):
        ds[0]


def test_truncated_label(tmp_path):
    _write_gta5(tmp_path)
    path = tmp_path / 'labels' / '00001.png'
    path.write_bytes(path.read_bytes()[:60])
    ds = GTA5Dataset(data_root=str(tmp_path))
    with pytest.raises(OSError, match=r'Cannot read label .*00001\.png.*truncated'):
        ds[0]
