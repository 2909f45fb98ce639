"""Evaluation: confusion-matrix IoU metric and tables."""
from uda.evaluation.iou_metric import (IoUMetric, confusion_matrix, format_table,
                                       iou_from_confusion, write_metrics_json)

__all__ = ['IoUMetric', 'confusion_matrix', 'format_table', 'iou_from_confusion',
           'write_metrics_json']
