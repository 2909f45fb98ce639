"""Mean +- std over seeds of ``metrics.json`` files: how every benchmark number is reported."""

from __future__ import annotations

import glob
import json
import math
import os
from typing import Any, Optional, Sequence

import numpy as np


def find_metrics(path: str) -> str:
    """The ``metrics.json`` of a work dir (or the file itself); exactly one must exist."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f'{path} is neither a work dir nor a metrics.json file.')
    direct = os.path.join(path, 'metrics.json')
    if os.path.isfile(direct):
        return direct
    found = sorted(glob.glob(os.path.join(path, '**', 'metrics.json'), recursive=True))
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(
            f'No metrics.json under {path}; run tools/test.py (or training with validation) first.'
        )
    raise ValueError(f'{path} holds several metrics.json files {found[:4]}; pass the one to use.')


def load_runs(
    paths: Sequence[str], domain: Optional[str] = None
) -> list[tuple[str, dict[str, Any]]]:
    """(name, report) per run; the runs must share protocol and classes. ``domain``: the
    report of that validation domain of runs with several (``metrics.json`` ``domains``,
    :mod:`uda.evaluation.domains`); None: the top-level one (the first domain's)."""
    if not paths:
        raise ValueError('Give at least one work dir or metrics.json.')
    runs = []
    for p in paths:
        f = find_metrics(p)
        with open(f) as fh:
            try:
                report = json.load(fh)
            except json.JSONDecodeError as err:
                raise ValueError(f'{f} is not valid JSON ({err}).') from err
        if domain is not None:
            domains = report.get('domains') or {}
            if domain not in domains:
                raise KeyError(f"{f} has no domain '{domain}' (domains: {sorted(domains)}).")
            report = domains[domain]
        if 'IoU' not in report or 'mIoU' not in report:
            raise KeyError(f'{f} has no IoU/mIoU entries; is it a uda metrics.json?')
        runs.append((p.rstrip('/'), report))
    first = runs[0][1]
    for name, rep in runs[1:]:
        if list(rep['IoU']) != list(first['IoU']) or rep.get('protocol') != first.get('protocol'):
            raise ValueError(
                f'{name} evaluates {rep.get("protocol")} {list(rep["IoU"])[:3]}..., '
                f'{runs[0][0]} evaluates {first.get("protocol")} '
                f'{list(first["IoU"])[:3]}...; aggregate runs of one protocol.'
            )
    return runs


def mean_std(values: Sequence[Optional[float]]) -> tuple[float, float, int]:
    """Mean and sample std (ddof=1) over the defined values, and their count."""
    vals = np.array([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if len(vals) == 0:
        return math.nan, math.nan, 0
    std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
    return float(vals.mean()), std, len(vals)


def _fmt(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return 'n/a'
    return f'{mean:.2f} ± {std:.2f}' if math.isfinite(std) else f'{mean:.2f}'


def seed_report(
    paths: Sequence[str], title: Optional[str] = None, domain: Optional[str] = None
) -> tuple[str, dict]:
    """Markdown table (rows: classes, then mIoU / mAcc / aAcc; mean ± std and each run), of
    one validation ``domain`` for runs with several (:func:`load_runs`).

    Returns:
        (markdown, summary dict with ``mean``/``std``/``n`` per row).
    """
    runs = load_runs(paths, domain)
    rows = [(c, [r['IoU'][c] for _, r in runs]) for c in runs[0][1]['IoU']]
    rows += [(k, [r.get(k) for _, r in runs]) for k in ('mIoU', 'mAcc', 'aAcc')]
    n = len(runs)
    lines = [
        f'### {title}\n' if title else '',
        f'{n} run(s), '
        + (f'domain {domain}, ' if domain else '')
        + f'protocol {runs[0][1].get("protocol")}; mean ± sample std (ddof=1) '
        'in %; std omitted for a single run.\n',
        '| | mean ± std | ' + ' | '.join(f'run {i + 1}' for i in range(n)) + ' |',
        '|---|---:|' + '---:|' * n,
    ]
    summary = {}
    for name, vals in rows:
        m, s, k = mean_std(vals)
        summary[name] = dict(mean=m, std=s, n=k)
        cells = ' | '.join('n/a' if v is None else f'{v:.2f}' for v in vals)
        label = f'**{name}**' if name in ('mIoU', 'mAcc', 'aAcc') else name
        stat = _fmt(m, s) + (f' (n={k})' if 0 < k < n else '')  # undefined in some runs
        lines.append(f'| {label} | {stat} | {cells} |')
    lines.append('')
    lines += [f'- run {i + 1}: `{name}`' for i, (name, _) in enumerate(runs)]
    return '\n'.join(lines).lstrip('\n') + '\n', summary
