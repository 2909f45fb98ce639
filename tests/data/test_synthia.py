"""SYNTHIA-RAND-CITYSCAPES layout: RGB/ + GT/LABELS/ 16-bit PNGs, class id in channel 1."""

import struct

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from uda.data import SynthiaDataset, read_synthia_label
from uda.evaluation.iou_metric import IoUMetric

# SYNTHIA class id -> Cityscapes trainId (SYNTHIA-RAND-CITYSCAPES README order).
SYNTHIA_TO_TRAIN = {
    0: 255,
    1: 10,
    2: 2,
    3: 0,
    4: 1,
    5: 4,
    6: 8,
    7: 5,
    8: 13,
    9: 7,
    10: 11,
    11: 18,
    12: 17,
    13: 255,
    14: 255,
    15: 6,
    16: 9,
    17: 12,
    18: 14,
    19: 15,
    20: 16,
    21: 3,
    22: 255,
}
H, W = 4, 23


def _write_synthia(root, ids=None, names=('0000000', '0000001')):
    (root / 'RGB').mkdir(parents=True, exist_ok=True)
    (root / 'GT' / 'LABELS').mkdir(parents=True, exist_ok=True)
    ids = np.tile(np.arange(23, dtype=np.uint16), (H, 1)) if ids is None else ids
    for n in names:
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(root / 'RGB' / f'{n}.png')
        # File channels: R = class id, G = instance id (> 255, so an 8-bit or wrong-channel
        # reader sees other numbers), B = 0. OpenCV writes BGR arrays as RGB files.
        inst = np.full_like(ids, 1000) + np.arange(W, dtype=np.uint16)
        cv2.imwrite(
            str(root / 'GT' / 'LABELS' / f'{n}.png'), np.stack([np.zeros_like(ids), inst, ids], -1)
        )
    return root


def test_label_file_is_16bit_rgb(tmp_path):
    _write_synthia(tmp_path)
    head = (tmp_path / 'GT/LABELS/0000000.png').read_bytes()[:33]
    width, height, depth, colour = struct.unpack('>IIBB', head[16:26])
    assert (width, height, depth, colour) == (W, H, 16, 2)  # 16-bit truecolour
    assert read_synthia_label(str(tmp_path / 'GT/LABELS/0000000.png'))[0].tolist() == list(
        range(23)
    )


def test_ids_map_to_trainids_exactly(tmp_path):
    ds = SynthiaDataset(data_root=str(_write_synthia(tmp_path)), class_protocol=None)
    gt = ds[0]['data_samples']['gt_sem_seg']
    assert gt[0].tolist() == [SYNTHIA_TO_TRAIN[i] for i in range(23)] and (gt == gt[0]).all()


@pytest.mark.parametrize(
    'protocol,dropped', [('synthia16', {9, 14, 16}), ('synthia13', {3, 4, 5, 9, 14, 16})]
)
def test_class_protocol_drops_classes(tmp_path, protocol, dropped):
    ds = SynthiaDataset(data_root=str(_write_synthia(tmp_path)), class_protocol=protocol)
    gt = ds[1]['data_samples']['gt_sem_seg'][0].tolist()
    expected = [255 if SYNTHIA_TO_TRAIN[i] in dropped else SYNTHIA_TO_TRAIN[i] for i in range(23)]
    assert gt == expected


def test_19_class_prediction_scored_under_16_and_13(tmp_path):
    # gt = one pixel of each of the 19 classes; the prediction is right except on 'wall' (3,
    # in 16 not 13) and 'terrain' (9, in neither), both predicted as road (0).
    gt = torch.arange(19).view(1, 19)
    pred = gt.clone()
    pred[0, 3] = pred[0, 9] = 0
    metric = IoUMetric(
        protocol='cityscapes19',
        eval_protocol='synthia16',
        extra_protocols=['synthia13'],
        print_table=False,
    )
    metric.process({}, [dict(pred_sem_seg=pred, gt_sem_seg=gt)])
    out = metric.compute_metrics(metric.results)
    # 16 classes: road IoU 1/3 (1 TP, 2 FP), wall 0, the other 14 perfect.
    assert out['mIoU'] == pytest.approx(100 * (14 + 1 / 3) / 16, abs=1e-3)
    # 13 classes: wall is not in it; road 1/3, the other 12 perfect.
    assert out['mIoU.synthia13'] == pytest.approx(100 * (12 + 1 / 3) / 13, abs=1e-3)
    assert len(metric.last_report['IoU']) == 16


def test_wrong_root_and_missing_labels(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r'SYNTHIA root .*nope is not a folder.*'
        r'SYNTHIA_ROOT',
    ):
        SynthiaDataset(data_root=str(tmp_path / 'nope'))
    (tmp_path / 'RGB').mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / 'RGB' / '0000000.png')
    with pytest.raises(
        FileNotFoundError,
        match=r'SYNTHIA label folder .*GT/LABELS is not a '
        r'folder',
    ):
        SynthiaDataset(data_root=str(tmp_path))
    assert len(SynthiaDataset(data_root=str(tmp_path), with_label=False)) == 1


def test_unpaired(tmp_path):
    _write_synthia(tmp_path)
    (tmp_path / 'RGB' / '0000001.png').unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r'1 label\(s\) in .*LABELS have no image .*'
        r'0000001\.png',
    ):
        SynthiaDataset(data_root=str(tmp_path))


def test_id_outside_the_map(tmp_path):
    ids = np.full((H, W), 3, np.uint16)
    ids[1, 1] = 300
    ds = SynthiaDataset(data_root=str(_write_synthia(tmp_path, ids)))
    with pytest.raises(ValueError, match=r'0000000\.png has raw ids \[300\].*synthia_ids.*0-22'):
        ds[0]


def test_truncated_label(tmp_path):
    _write_synthia(tmp_path)
    path = tmp_path / 'GT/LABELS/0000000.png'
    path.write_bytes(path.read_bytes()[:-20])
    ds = SynthiaDataset(data_root=str(tmp_path))
    with pytest.raises(OSError, match=r'Cannot read label .*0000000\.png.*truncated'):
        ds[0]
