"""Report files ``tools/test.py`` writes besides ``metrics.json``: tables and a confusion plot."""

from __future__ import annotations

import json
import os.path as osp
from typing import Optional, Sequence

import numpy as np

from uda.data.classes import get_protocol
from uda.evaluation.confusion_plot import plot_confusion
from uda.evaluation.iou_metric import format_table


def per_class_tables(report: dict) -> tuple[str, str]:
    """(plain text, Markdown) per-class IoU / accuracy tables of a metrics report."""
    names = list(report['IoU'])
    iou = [np.nan if v is None else v / 100 for v in report['IoU'].values()]
    acc = [np.nan if v is None else v / 100 for v in report['Acc'].values()]
    return format_table(names, iou, acc), format_table(names, iou, acc, markdown=True)


def write_report_files(
    metrics_file: str,
    work_dir: str,
    confusion: Optional[np.ndarray],
    protocol: str,
    eval_ids: Optional[Sequence[int]] = None,
) -> None:
    """Print the table and write ``per_class.md`` and ``confusion_matrix.png`` to ``work_dir``."""
    with open(metrics_file) as f:
        report = json.load(f)
    text, markdown = per_class_tables(report)
    miou = 'n/a' if report['mIoU'] is None else f'{report["mIoU"]:.2f}'
    aacc = 'n/a' if report['aAcc'] is None else f'{report["aAcc"]:.2f}'
    header = f'mIoU {miou} ({report["protocol"]}, {report["num_images"]} images)'
    with open(osp.join(work_dir, 'per_class.md'), 'w') as f:
        f.write(f'{header}\n\n{markdown}\n')
    print(f'{header}  aAcc {aacc}  -> {metrics_file}, per_class.md')
    if confusion is not None:
        plot_confusion(
            confusion,
            get_protocol(protocol).classes,
            osp.join(work_dir, 'confusion_matrix.png'),
            eval_ids,
            title=f'{report["protocol"]}: mIoU {miou}',
        )
