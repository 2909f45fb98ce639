"""IoUMetric on named class subsets: SYNTHIA 16/13, CamVid's classes inside Cityscapes."""

import json

import pytest
import torch

from uda.evaluation.iou_metric import IoUMetric


def _score(metric, pred, gt):
    metric.process({}, [dict(pred_sem_seg=pred, gt_sem_seg=gt)])
    return metric.compute_metrics(metric.results)


def test_camvid_classes_inside_cityscapes(tmp_path):
    # One pixel per Cityscapes class; the prediction is wrong only on 'terrain' (9, not a
    # CamVid class) and 'rider' (12, a CamVid class: bicyclist), both predicted as 'bicycle'.
    gt = torch.arange(19).view(1, 19)
    pred = gt.clone()
    pred[0, 9] = pred[0, 12] = 18
    out_file = tmp_path / 'm.json'
    metric = IoUMetric(
        protocol='cityscapes19',
        eval_protocol='camvid11_in_cityscapes19',
        extra_protocols=['synthia16'],
        out_file=str(out_file),
        print_table=False,
    )
    out = _score(metric, pred, gt)
    assert out['mIoU'] == pytest.approx(100 * 10 / 11, abs=1e-3)  # rider 0, 10 others 1
    # synthia16 has rider (0) and bicycle (1 TP / 3 predicted = 1/3), no terrain.
    assert out['mIoU.synthia16'] == pytest.approx(100 * (14 + 1 / 3) / 16, abs=1e-3)
    report = json.loads(out_file.read_text())
    assert report['protocol'] == 'camvid11_in_cityscapes19' and len(report['IoU']) == 11
    assert 'terrain' not in report['IoU'] and report['mIoU.synthia16'] == pytest.approx(
        out['mIoU.synthia16'], abs=1e-3
    )


def test_camvid11_label_space():
    gt = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]])
    pred = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 3]])
    out = _score(IoUMetric(protocol='camvid11', print_table=False), pred, gt)
    # bicyclist: 0; pedestrian: 1 TP, 1 FP -> 1/2; the void pixel counts nowhere.
    assert out['mIoU'] == pytest.approx(100 * (9 + 0.5) / 11, abs=1e-3)


def test_subset_over_another_label_space_is_rejected():
    with pytest.raises(
        ValueError,
        match=r"extra_protocols 'synthia13' is over label space .*"
        r"not over 'camvid11'",
    ):
        IoUMetric(protocol='camvid11', extra_protocols=['synthia13'])
