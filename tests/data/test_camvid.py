"""CamVid list-file dataset: sequence filtering, the 11-class map and CamVid -> Cityscapes.

Tests on the real frames use ``../shared/data/camvid`` and skip with a reason without it; the
error tests build a tiny tree in the same layout.
"""

import os

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from tests.conftest import SHARED_CAMVID
from uda.data import CamVidDataset
from uda.registry import DATASETS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
DAY2DUSK = os.path.join(ROOT, 'configs', '_base_', 'datasets', 'camvidday2dusk_128x128.py')
CAMVID_TO_CS = {0: 10, 1: 2, 2: 5, 3: 0, 4: 1, 5: 8, 6: 7, 7: 4, 8: 13, 9: 11, 10: 12, 11: 255}

needs_camvid = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHARED_CAMVID, 'train.txt')),
    reason=f'CamVid not found at {os.path.abspath(SHARED_CAMVID)} (shared data is optional)',
)


def _raw_label(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


@needs_camvid
def test_day2dusk_config_splits(monkeypatch):
    monkeypatch.setenv('CAMVID_ROOT', os.path.abspath(SHARED_CAMVID))
    cfg = Config.fromfile(DAY2DUSK)
    src, tgt, val = (DATASETS.build(cfg[k]) for k in ('source_train', 'target_train', 'target_val'))
    seqs = lambda ds: sorted({os.path.basename(p).split('_')[0] for p, _ in ds.items})  # noqa
    assert (len(src), seqs(src)) == (305, ['0006R0', '0016E5'])
    assert (len(tgt), seqs(tgt)) == (62, ['0001TP'])
    assert (len(val), seqs(val)) == (62, ['0001TP'])
    assert all('/train/' in p for p, _ in tgt.items) and all('/test/' in p for p, _ in val.items)
    assert all(lbl is None for _, lbl in tgt.items)  # target labels are never read
    assert 'gt_sem_seg' not in tgt[0]['data_samples']
    s = val[0]
    assert s['inputs'].shape == (3, 180, 240)
    assert set(s['data_samples']['gt_sem_seg'].unique().tolist()) <= set(range(11)) | {255}


@needs_camvid
def test_camvid11_labels_exact():
    ds = CamVidDataset(data_root=SHARED_CAMVID, split='test', sequences=['0001TP'])
    raw = _raw_label(ds.items[5][1])
    assert raw.shape == (360, 480) and raw.max() <= 11
    gt = ds[5]['data_samples']['gt_sem_seg'].numpy()
    assert np.array_equal(gt, np.where(raw == 11, 255, raw))


@needs_camvid
def test_camvid_onto_cityscapes_trainids_exact():
    ds = CamVidDataset(
        data_root=SHARED_CAMVID,
        split='val',
        protocol='cityscapes19',
        label_map='camvid11_to_cityscapes19',
    )
    raw = _raw_label(ds.items[0][1])
    gt = ds[0]['data_samples']['gt_sem_seg'].numpy()
    lut = np.array([CAMVID_TO_CS[i] for i in range(12)])
    assert np.array_equal(gt, lut[raw])
    assert len(np.unique(raw)) > 5  # a real frame with many classes


def _write_camvid(root, label_value=3):
    for split, stems in (('train', ['0001TP_006690', '0006R0_f01230']), ('test', ['Seq05VD_f0'])):
        (root / split).mkdir(parents=True)
        (root / f'{split}annot').mkdir()
        lines = []
        for s in stems:
            Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / split / f'{s}.png')
            Image.fromarray(np.full((6, 8), label_value, np.uint8)).save(
                root / f'{split}annot' / f'{s}.png'
            )
            lines.append(f'{split}/{s}.png {split}annot/{s}.png')
        (root / f'{split}.txt').write_text('\n'.join(lines) + '\n')
    return root


def test_sequences_filter_and_unknown_sequence(tmp_path):
    _write_camvid(tmp_path)
    ds = CamVidDataset(data_root=str(tmp_path), sequences=['0006R0'])
    assert [os.path.basename(p) for p, _ in ds.items] == ['0006R0_f01230.png']
    with pytest.raises(
        ValueError,
        match=r"no frames of sequences \['0016E5'\]; its sequences "
        r"are \['0001TP', '0006R0'\]",
    ):
        CamVidDataset(data_root=str(tmp_path), sequences=['0016E5'])


def test_wrong_root_and_missing_split(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"CamVid root .*nope' is not a folder.*"
        r'CAMVID_ROOT',
    ):
        CamVidDataset(data_root=str(tmp_path / 'nope'))
    _write_camvid(tmp_path)
    with pytest.raises(
        FileNotFoundError,
        match=r"val\.txt not found \(split='val'\).*"
        r"\['test\.txt', 'train\.txt'\]",
    ):
        CamVidDataset(data_root=str(tmp_path), split='val')


def test_label_value_outside_the_map(tmp_path):
    ds = CamVidDataset(data_root=str(_write_camvid(tmp_path, label_value=12)), split='test')
    with pytest.raises(ValueError, match=r"Seq05VD_f0\.png has raw ids \[12\].*'camvid11'.*0-11"):
        ds[0]
