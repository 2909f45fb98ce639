"""Evaluation: confusion-matrix IoU metric, tables, and the inference modes."""

from uda.evaluation.domains import DomainEvaluator
from uda.evaluation.inference import (
    aug_inference,
    check_test_cfg,
    run_inference,
    slide_inference,
    whole_inference,
)
from uda.evaluation.iou_metric import (
    IoUMetric,
    confusion_matrix,
    format_table,
    iou_from_confusion,
    write_metrics_json,
)

__all__ = [
    'DomainEvaluator',
    'IoUMetric',
    'aug_inference',
    'check_test_cfg',
    'confusion_matrix',
    'format_table',
    'iou_from_confusion',
    'run_inference',
    'slide_inference',
    'whole_inference',
    'write_metrics_json',
]
