"""Confusion-matrix IoU, the protocol of the Cityscapes benchmark.

Per class c: IoU_c = TP_c / (TP_c + FP_c + FN_c), counted over all images at once (not averaged
per image). Pixels labelled ``ignore_index`` count nowhere. A class with no ground-truth and no
predicted pixel has an undefined IoU (NaN) and does not enter the mean, as in
``cityscapesscripts``. mIoU is the mean over the classes of the evaluation protocol.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log

from uda.data.classes import get_protocol, resolve_eval_ids
from uda.registry import METRICS


def confusion_matrix(
    pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """[num_classes, num_classes] counts, rows = ground truth, columns = prediction."""
    valid = gt != ignore_index
    if (gt[valid] >= num_classes).any() or (gt[valid] < 0).any():
        raise ValueError(
            f'Ground truth has ids outside 0..{num_classes - 1} (and ignore '
            f'{ignore_index}); check the dataset label_map / protocol.'
        )
    pred = pred[valid].long()
    if len(pred) and (int(pred.max()) >= num_classes or int(pred.min()) < 0):
        # Clamping would count a 19-class model's classes 11-18 as class 10 of an 11-class
        # protocol: a wrong number instead of an error.
        raise ValueError(
            f'Predictions have class ids up to {int(pred.max())} (lowest {int(pred.min())}), '
            f'but the evaluated protocol has {num_classes} classes (0..{num_classes - 1}). '
            "Set the model's num_classes "
            "(model.segmentor.num_classes) to the protocol's class count, or set "
            'val_evaluator.protocol / test_evaluator.protocol to the label space the model '
            'predicts.'
        )
    idx = gt[valid].long() * num_classes + pred
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(
    conf: np.ndarray, eval_ids: Optional[Sequence[int]] = None
) -> dict[str, Any]:
    """Per-class IoU, mIoU, per-class accuracy and pixel accuracy from a confusion matrix.

    Args:
        conf: [C, C] counts (rows = ground truth).
        eval_ids: Classes entering the means; all by default.

    Returns:
        ``dict(iou=[C] (NaN where undefined), miou, acc=[C], macc, aacc)``, fractions in [0, 1].
    """
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    gt_sum, pred_sum = conf.sum(1), conf.sum(0)
    union = gt_sum + pred_sum - tp
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt_sum > 0, tp / gt_sum, np.nan)
    ids = list(range(len(conf))) if eval_ids is None else list(eval_ids)
    sub_iou, sub_acc = iou[ids], acc[ids]
    miou = float(np.nanmean(sub_iou)) if np.isfinite(sub_iou).any() else float('nan')
    macc = float(np.nanmean(sub_acc)) if np.isfinite(sub_acc).any() else float('nan')
    gt_eval = gt_sum[ids].sum()
    aacc = float(tp[ids].sum() / gt_eval) if gt_eval > 0 else float('nan')
    return dict(iou=iou, miou=miou, acc=acc, macc=macc, aacc=aacc)


def format_table(
    names: Sequence[str], iou: Sequence[float], acc: Sequence[float], markdown: bool = False
) -> str:
    """Per-class IoU / accuracy table, in percent."""

    def f(v: float) -> str:
        return 'n/a' if not np.isfinite(v) else f'{100 * v:.2f}'

    width = max(len(n) for n in names) if names else 5
    if markdown:
        lines = ['| class | IoU | Acc |', '|---|---:|---:|']
        lines += [f'| {n} | {f(i)} | {f(a)} |' for n, i, a in zip(names, iou, acc)]
    else:
        lines = [f'{"class":<{width}}  {"IoU":>7}  {"Acc":>7}', '-' * (width + 18)]
        lines += [f'{n:<{width}}  {f(i):>7}  {f(a):>7}' for n, i, a in zip(names, iou, acc)]
    return '\n'.join(lines)


def _nan_to_none(v: float) -> Optional[float]:
    return None if not np.isfinite(v) else round(float(v) * 100, 4)


@METRICS.register_module()
class IoUMetric(BaseMetric):
    """IoU per class, mIoU over a named protocol, class and pixel accuracy.

    Args:
        protocol: Label space of predictions and labels (e.g. ``cityscapes19``).
        eval_protocol: Protocol naming the evaluated subset (e.g. ``synthetic9``, ``synthia16``)
            or None for the label space's own classes.
        eval_classes: Explicit list of class names to evaluate instead of ``eval_protocol``.
        extra_protocols: More subset protocols to report beside the main mIoU, as
            ``mIoU.<name>`` (e.g. ``['synthia13']`` next to ``eval_protocol='synthia16'``, so
            one evaluation gives both numbers that SYNTHIA papers report).
        ignore_index: Label value of unlabelled pixels.
        out_file: If set, write ``metrics.json`` there after each evaluation.
        print_table: Log the per-class table.
    """

    default_prefix: Optional[str] = None

    def __init__(
        self,
        protocol: str = 'cityscapes19',
        eval_protocol: Optional[str] = None,
        eval_classes: Optional[Sequence[str]] = None,
        extra_protocols: Sequence[str] = (),
        ignore_index: int = 255,
        out_file: Optional[str] = None,
        print_table: bool = True,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.protocol = get_protocol(protocol)
        if eval_protocol is not None:
            self.eval_ids = self._subset_ids(eval_protocol, 'eval_protocol')
            self.eval_name = eval_protocol
        else:
            self.eval_ids = resolve_eval_ids(self.protocol, eval_classes)
            self.eval_name = protocol if eval_classes is None else 'custom'
        self.extra_ids = {
            name: self._subset_ids(name, 'extra_protocols') for name in extra_protocols
        }
        self.num_classes = self.protocol.num_classes
        self.ignore_index = ignore_index
        self.out_file = out_file
        self.print_table = print_table

    def _subset_ids(self, name: str, arg: str) -> tuple[int, ...]:
        sub = get_protocol(name)
        if sub.classes != self.protocol.classes:
            raise ValueError(
                f"{arg} '{name}' is over label space {list(sub.classes[:3])}..., "
                f"not over '{self.protocol.name}'. Use a protocol whose base is "
                f"'{self.protocol.name}' (a JSON with base + subset)."
            )
        return sub.eval_ids

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'gt_sem_seg' not in sample:
                raise KeyError(
                    f'No ground truth for {sample.get("img_path", "an image")}: the '
                    'evaluation dataset needs labels (with_label=True).'
                )
            pred, gt = sample['pred_sem_seg'], sample['gt_sem_seg']
            conf = confusion_matrix(
                pred.reshape(-1),
                gt.reshape(-1).to(pred.device),
                self.num_classes,
                self.ignore_index,
            )
            self.results.append(conf.cpu().numpy())

    def compute_metrics(self, results: list) -> dict[str, float]:
        conf = np.sum(results, axis=0)
        self.last_confusion = conf  # for the confusion-matrix picture of tools/test.py
        stats = iou_from_confusion(conf, self.eval_ids)
        names = [self.protocol.classes[i] for i in self.eval_ids]
        table = format_table(
            names, stats['iou'][list(self.eval_ids)], stats['acc'][list(self.eval_ids)]
        )
        if self.print_table:
            extra = ''.join(
                f'  mIoU({name}) {100 * iou_from_confusion(conf, ids)["miou"]:.2f}'
                for name, ids in self.extra_ids.items()
            )
            print_log(
                f'\nper-class results ({self.eval_name}, {len(results)} images):\n{table}\n'
                f'mIoU {100 * stats["miou"]:.2f}  aAcc {100 * stats["aacc"]:.2f}  '
                f'mAcc {100 * stats["macc"]:.2f}{extra}',
                logger=MMLogger.get_current_instance(),
            )
        report: dict[str, Any] = dict(
            mIoU=_nan_to_none(stats['miou']),
            aAcc=_nan_to_none(stats['aacc']),
            mAcc=_nan_to_none(stats['macc']),
            IoU={n: _nan_to_none(stats['iou'][i]) for n, i in zip(names, self.eval_ids)},
            Acc={n: _nan_to_none(stats['acc'][i]) for n, i in zip(names, self.eval_ids)},
            protocol=self.eval_name,
            num_images=len(results),
        )
        for name, ids in self.extra_ids.items():
            report[f'mIoU.{name}'] = _nan_to_none(iou_from_confusion(conf, ids)['miou'])
        self.last_report = report
        if self.out_file:
            write_metrics_json(report, self.out_file)
        metrics: dict[str, float] = dict(
            mIoU=report['mIoU'] or 0.0, aAcc=report['aAcc'] or 0.0, mAcc=report['mAcc'] or 0.0
        )
        for name in self.extra_ids:
            metrics[f'mIoU.{name}'] = report[f'mIoU.{name}'] or 0.0
        for n, v in report['IoU'].items():
            if v is not None:
                metrics[f'IoU.{n}'] = v
        return metrics


def write_metrics_json(report: dict, path: Union[str, os.PathLike]) -> None:
    """Write a metrics report (percentages) as JSON, creating the folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(
            f'{path} is a directory; give a file path such as {os.path.join(path, "metrics.json")}.'
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)
