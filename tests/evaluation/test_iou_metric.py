"""IoU golden values computed by hand, with ignore pixels and absent classes."""

import json
import math

import numpy as np
import pytest
import torch

from uda.evaluation import IoUMetric, confusion_matrix, iou_from_confusion


def test_confusion_matrix_ignores_255():
    gt = torch.tensor([[0, 0, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 0]])
    conf = confusion_matrix(pred.flatten(), gt.flatten(), num_classes=3)
    assert conf.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_golden_iou_with_absent_class():
    # 2x2 image, classes {0, 1, 2}; class 2 is neither in GT nor predicted -> NaN, not 0.
    gt = torch.tensor([[0, 0], [1, 255]])
    pred = torch.tensor([[0, 1], [1, 2]])  # the ignore pixel's prediction (2) does not count
    conf = confusion_matrix(pred.flatten(), gt.flatten(), 3).numpy()
    stats = iou_from_confusion(conf)
    # class 0: TP=1, FP=0, FN=1 -> 1/2. class 1: TP=1, FP=1, FN=0 -> 1/2.
    assert stats['iou'][0] == pytest.approx(0.5)
    assert stats['iou'][1] == pytest.approx(0.5)
    assert math.isnan(stats['iou'][2])
    assert stats['miou'] == pytest.approx(0.5)
    assert stats['aacc'] == pytest.approx(2 / 3)
    assert stats['acc'][0] == pytest.approx(0.5) and stats['acc'][1] == pytest.approx(1.0)


def test_predicted_but_absent_class_counts_as_zero():
    gt = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 1])
    stats = iou_from_confusion(confusion_matrix(pred, gt, 2).numpy())
    assert stats['iou'][0] == pytest.approx(0.75)
    assert stats['iou'][1] == 0.0  # false positives only: union 1, TP 0
    assert stats['miou'] == pytest.approx(0.375)


def test_metric_accumulates_over_images_and_writes_json(tmp_path):
    out = tmp_path / 'metrics.json'
    metric = IoUMetric(
        protocol='cityscapes19',
        eval_classes=['road', 'sidewalk'],
        out_file=str(out),
        print_table=False,
    )
    # image 1: road predicted right on 3 px, sidewalk missed on 1 px (predicted road)
    # image 2: sidewalk right on 2 px, one road pixel predicted as car (outside the subset)
    samples = [
        dict(
            pred_sem_seg=torch.tensor([[0, 0], [0, 0]]), gt_sem_seg=torch.tensor([[0, 0], [0, 1]])
        ),
        dict(
            pred_sem_seg=torch.tensor([[1, 1], [13, 0]]),
            gt_sem_seg=torch.tensor([[1, 1], [0, 255]]),
        ),
    ]
    metric.process({}, samples)
    res = metric.compute_metrics(metric.results)
    # road: TP 3, FP 1 (img1 sidewalk px), FN 1 (img2 -> car) -> 3/5; sidewalk: TP 2, FN 1 -> 2/3
    assert res['IoU.road'] == pytest.approx(60.0)
    assert res['IoU.sidewalk'] == pytest.approx(200 / 3, abs=1e-3)
    assert res['mIoU'] == pytest.approx((60 + 200 / 3) / 2, abs=1e-3)
    assert res['aAcc'] == pytest.approx(5 / 7 * 100, abs=1e-3)
    report = json.loads(out.read_text())
    assert set(report) >= {'mIoU', 'IoU', 'aAcc'}
    assert list(report['IoU']) == ['road', 'sidewalk']
    assert report['mIoU'] == pytest.approx(res['mIoU'], abs=1e-3)


def test_eval_protocol_subset():
    metric = IoUMetric(protocol='cityscapes19', eval_protocol='synthetic9', print_table=False)
    assert len(metric.eval_ids) == 9
    with pytest.raises(ValueError, match='not in protocol'):
        IoUMetric(protocol='cityscapes19', eval_classes=['roadd'])


def test_metric_requires_ground_truth():
    metric = IoUMetric(print_table=False)
    with pytest.raises(KeyError, match='ground truth'):
        metric.process(
            {}, [dict(pred_sem_seg=torch.zeros(2, 2, dtype=torch.long), img_path='x.png')]
        )


def test_iou_numpy_matches_manual_random():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, 500)
    pred = rng.integers(0, 4, 500)
    conf = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), 4).numpy()
    stats = iou_from_confusion(conf)
    for c in range(4):
        tp = np.sum((gt == c) & (pred == c))
        union = np.sum((gt == c) | (pred == c))
        assert stats['iou'][c] == pytest.approx(tp / union)
