"""The lines ``tools/train.py`` prints after training: the mIoU of every validation of the run,
the warm-up starting point against the adapted model (a self-training run whose teacher starts
at ``start_iter``), and the final ``metrics.json``.

They are read from the run's files (``metrics.json``, the local scalars log
``<log_dir>/vis_data/scalars.json``), so that the report is the same whether the run ran on one
process or many, and it can be made again for a finished run.
"""

from __future__ import annotations

import json
import os.path as osp
from typing import Any, Optional


def validation_history(scalars_file: str, key: str = 'mIoU') -> list[dict[str, Any]]:
    """The scalar records of ``scalars_file`` (one JSON object per line, mmengine's
    ``LocalVisBackend``) that hold ``key``: one per validation, in order; ``[]`` if the file
    does not exist."""
    if not osp.isfile(scalars_file):
        return []
    with open(scalars_file) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if key in r]


def warm_up_line(
    history: list[dict[str, Any]], start_iter: int, key: str = 'mIoU'
) -> Optional[str]:
    """``warm-up (before self-training, iteration N): a -> adapted (iteration M): b mIoU (+d)``
    for a run whose self-training starts at ``start_iter`` > 0 and that was validated at or
    before it and after it; else None. The starting point is the last validation at or before
    ``start_iter`` (the warm-up model, e.g. ABN), the adapted one is the last validation."""
    before = [h for h in history if h['step'] <= start_iter]
    if not (start_iter and before and history[-1]['step'] > start_iter):
        return None
    first, last = before[-1], history[-1]
    return (
        f'warm-up (before self-training, iteration {first["step"]}): '
        f'{first[key]:.2f} -> adapted (iteration {last["step"]}): '
        f'{last[key]:.2f} {key} ({last[key] - first[key]:+.2f})'
    )


def training_summary(work_dir: str, log_dir: str, model_cfg: Any) -> list[str]:
    """The report lines of a finished run in ``work_dir`` (empty without ``metrics.json``).

    ``model_cfg`` is the run's ``cfg.model``: its ``teacher.start_iter`` is where
    self-training starts. A run with several validation domains (``metrics.json`` with
    ``domains``) gets the lines of each domain, its numbers named ``<domain>/mIoU``.
    """
    metrics = osp.join(work_dir, 'metrics.json')
    if not osp.isfile(metrics):
        return []
    with open(metrics) as f:
        report = json.load(f)
    scalars = osp.join(log_dir, 'vis_data', 'scalars.json')
    start = (model_cfg.get('teacher') or {}).get('start_iter', 0)
    domains = report.get('domains')
    if not domains:  # one validation dataset: its numbers are 'mIoU', ...
        return _lines(validation_history(scalars), 'mIoU', 'target', start) + [
            f'target mIoU ({report["protocol"]}, {report["num_images"]} images): '
            f'{report["mIoU"]:.2f}  -> {metrics}'
        ]
    lines = []  # several domains (uda.evaluation.domains): '<domain>/mIoU', ...
    for name, rep in domains.items():
        key = f'{name}/mIoU'
        lines += _lines(validation_history(scalars, key), key, name, start)
        miou = 'n/a' if rep.get('mIoU') is None else f'{rep["mIoU"]:.2f}'
        lines.append(f'{name} mIoU ({rep.get("protocol")}, {rep.get("num_images")} images): {miou}')
    return lines + [f'-> {metrics}']


def _lines(history: list[dict[str, Any]], key: str, label: str, start: int) -> list[str]:
    """The validation history and the warm-up line of one metric name."""
    lines = []
    if len(history) > 1:
        lines.append(
            f'{label} mIoU by iteration: '
            + ', '.join(f'{h["step"]}: {h[key]:.2f}' for h in history)
        )
    warm_up = warm_up_line(history, start, key) if history else None
    if warm_up:
        lines.append(warm_up)
    return lines
