"""uda's IoU equals the official cityscapesscripts evaluation on a generated Cityscapes tree."""

from __future__ import annotations

import copy
import glob
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from uda.data.classes import get_protocol
from uda.engine.hooks.prediction_writer import PredictionWriterHook
from uda.evaluation import IoUMetric, iou_from_confusion
from uda.evaluation.cityscapes_format import (
    TRAINID_TO_LABELID,
    labelid_to_trainid,
    trainid_to_labelid,
)

cs_eval = pytest.importorskip(
    'cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling',
    reason='cityscapesscripts (the official evaluation) is not installed: '
    'pip install --no-deps cityscapesscripts pyquaternion',
)


def test_label_maps_round_trip() -> None:
    tid = np.arange(19, dtype=np.uint8).reshape(1, 19)
    assert np.array_equal(labelid_to_trainid(trainid_to_labelid(tid)), tid)
    from cityscapesscripts.helpers.labels import trainId2label

    assert [trainId2label[t].id for t in range(19)] == list(TRAINID_TO_LABELID)
    assert [trainId2label[t].name for t in range(19)] == list(get_protocol('cityscapes19').classes)


def make_tree(root: str, n: int = 4, h: int = 48, w: int = 64, seed: int = 0) -> list[str]:
    """gtFine/val/<city>/*_gtFine_labelIds.png with blocky random labelIds (0..33)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        city = ('aachen', 'bonn')[i % 2]
        blocks = rng.integers(0, 34, size=(h // 8, w // 8))
        # Train (labelId 31) and bus (28) never occur: their IoU is undefined (NaN) in both.
        blocks[np.isin(blocks, (28, 31))] = 7
        gt = np.kron(blocks, np.ones((8, 8), np.int64)).astype(np.uint8)
        noise = rng.random((h, w)) < 0.05
        gt[noise] = rng.integers(0, 34, size=int(noise.sum()))
        gt[np.isin(gt, (28, 31))] = 7
        folder = os.path.join(root, 'gtFine', 'val', city)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f'{city}_{i:06d}_000019_gtFine_labelIds.png')
        Image.fromarray(gt).save(path)
        paths.append(path)
    return paths


def test_miou_equals_cityscapesscripts(tmp_path) -> None:
    gt_paths = make_tree(str(tmp_path))
    rng = np.random.default_rng(1)
    metric = IoUMetric(protocol='cityscapes19', print_table=False)
    writer = PredictionWriterHook(
        str(tmp_path / 'vis'), labelid_dir=str(tmp_path / 'results'), max_images=0
    )
    writer.before_test(None)
    for path in gt_paths:
        gt = labelid_to_trainid(np.array(Image.open(path)))
        # A noisy predictor: right on ~60% of pixels (ignored ones included), else random.
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 19, gt.shape))
        pred[pred == 255] = rng.integers(0, 19, int((pred == 255).sum()))
        pred[pred == TRAINID_TO_LABELID.index(31)] = 0  # keep 'train' absent everywhere
        stem = os.path.basename(path).replace('_gtFine_labelIds.png', '_leftImg8bit.png')
        sample = dict(
            pred_sem_seg=torch.from_numpy(pred.astype(np.int64)),
            gt_sem_seg=torch.from_numpy(gt.astype(np.int64)),
            img_path=stem,
        )
        metric.process({}, [sample])
        writer.after_test_iter(None, 0, None, [sample])
    ours = metric.compute_metrics(metric.results)
    report = metric.last_report  # metrics.json content: percent, rounded to 4 decimals
    exact = iou_from_confusion(np.sum(metric.results, axis=0))

    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    args.predictionPath = str(tmp_path / 'results')
    args.predictionWalk = None
    preds = [cs_eval.getPrediction(args, p) for p in gt_paths]  # official name matching
    official = cs_eval.evaluateImgLists(preds, gt_paths, args)

    names = get_protocol('cityscapes19').classes
    assert len(glob.glob(str(tmp_path / 'results' / '*.png'))) == len(gt_paths)
    nan_classes = 0
    for name in names:
        theirs = official['classScores'][name]
        mine = exact['iou'][names.index(name)]
        if math.isnan(theirs):
            assert math.isnan(mine) and report['IoU'][name] is None, name
            nan_classes += 1
        else:
            assert mine == pytest.approx(theirs, rel=1e-12, abs=1e-15), name
            assert report['IoU'][name] == pytest.approx(100 * theirs, abs=5e-5), name
    # 'train' is absent from ground truth and predictions; 'bus' only occurs as a wrong guess.
    assert nan_classes == 1
    assert exact['miou'] == pytest.approx(official['averageScoreClasses'], rel=1e-12)
    assert ours['mIoU'] == pytest.approx(100 * official['averageScoreClasses'], abs=5e-5)
