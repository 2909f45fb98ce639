"""Several validation domains in one run, each with its own metric names.

``val_dataloader.dataset = dict(type='DomainDatasets', domains=dict(cityscapes=...,
camvid-dusk=...))`` (:class:`uda.data.domains.DomainDatasets`) concatenates the domains'
datasets (in order, so the validation loop runs them one after the other) and records where
each begins;
``val_evaluator = dict(type='DomainEvaluator', metrics=dict(type='IoUMetric', ...))`` scores
each domain's images alone and names the results ``<domain>/<metric>``
(``cityscapes/mIoU``, ``camvid-dusk/mIoU``, ...): in the log, TensorBoard and ``metrics.json``.
This is mmdet's ``MultiDatasetsEvaluator`` (open-mmlab/mmdetection
mmdet/evaluation/evaluator/multi_datasets_evaluator.py): results gathered in dataset order,
sliced by the domains' cumulative sizes.

``metrics.json`` of such a run holds every domain's report under ``domains``, the
``<domain>/mIoU`` (``aAcc``, ``mAcc``) numbers at the top level, and the first domain's report
at the top level as well (``primary``): tools that read one number (the sweep's table, the
warm-up report) read the first domain's.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence, Union

from mmengine.dist import broadcast_object_list, collect_results, is_main_process
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger, print_log

from uda.registry import EVALUATOR, METRICS


@EVALUATOR.register_module()
class DomainEvaluator(Evaluator):
    """Scores each domain of a :class:`DomainDatasets` alone: ``<domain>/<metric>`` names.

    Args:
        metrics: One metric config (e.g. ``dict(type='IoUMetric', protocol='cityscapes19')``)
            applied to every domain.
        out_file: ``metrics.json`` written after each evaluation (``tools/train.py`` and
            ``tools/test.py`` set it to ``<work_dir>/metrics.json``).
    """

    def __init__(self, metrics: Union[dict, Sequence[dict]], out_file: Optional[str] = None):
        if not isinstance(metrics, dict):
            if len(metrics) != 1:
                raise ValueError(
                    f'DomainEvaluator takes one metric config (applied to every domain); got '
                    f'{len(metrics)}.'
                )
            metrics = metrics[0]
        cfg = dict(metrics)
        if cfg.get('out_file'):
            raise ValueError(
                'DomainEvaluator: set out_file on the evaluator, not on its metric (one '
                'metrics.json holds every domain).'
            )
        super().__init__(METRICS.build(cfg) if isinstance(cfg, dict) else cfg)
        self.out_file = out_file
        self.last_report: Optional[dict[str, Any]] = None
        self.last_confusions: dict[str, Any] = {}

    def _domains(self) -> list[tuple[str, int, int]]:
        meta = self.dataset_meta or {}
        domains = meta.get('domains')
        if not domains:
            raise ValueError(
                'DomainEvaluator needs a DomainDatasets validation dataset '
                "(val_dataloader.dataset=dict(type='DomainDatasets', domains=dict(...))); "
                'use the plain metric for a single dataset.'
            )
        return [(str(n), int(a), int(b)) for n, a, b in domains]

    def evaluate(self, size: int) -> dict:
        """Per-domain metrics of the gathered results, named ``<domain>/<key>``."""
        metric = self.metrics[0]
        domains = self._domains()
        results = collect_results(metric.results, size, metric.collect_device)
        out: list[Optional[dict]] = [None]
        if is_main_process():
            named: dict[str, Any] = {}
            reports: dict[str, dict] = {}
            confusions: dict[str, Any] = {}
            for name, start, end in domains:
                print_log(f'domain {name}:', logger=MMLogger.get_current_instance())
                values = metric.compute_metrics(results[start:end])
                named.update({f'{name}/{k}': v for k, v in values.items()})
                reports[name] = copy.deepcopy(getattr(metric, 'last_report', values))
                confusions[name] = getattr(metric, 'last_confusion', None)
            self.last_report = domain_report(reports)
            # The metric's last report and confusion are the primary domain's, as the
            # top level of metrics.json (tools/test.py's report files read them).
            metric.last_report = reports[domains[0][0]]
            metric.last_confusion = confusions[domains[0][0]]
            self.last_confusions = confusions
            if self.out_file:
                from uda.evaluation.iou_metric import write_metrics_json

                write_metrics_json(self.last_report, self.out_file)
            out = [named]
        broadcast_object_list(out)
        metric.results.clear()
        return out[0] or {}


def domain_report(reports: dict[str, dict]) -> dict[str, Any]:
    """The ``metrics.json`` of a run with several domains (see the module docstring)."""
    names = list(reports)
    report: dict[str, Any] = dict(reports[names[0]])
    report['primary'] = names[0]
    for name, rep in reports.items():
        for key in ('mIoU', 'aAcc', 'mAcc'):
            if key in rep:
                report[f'{name}/{key}'] = rep[key]
    report['domains'] = reports
    return report


def domain_names(report: dict[str, Any]) -> list[str]:
    """The domains of a ``metrics.json`` report, ``[]`` for a single-dataset run."""
    return list(report.get('domains') or {})
