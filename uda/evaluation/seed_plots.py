"""Pictures of runs over seeds: learning curves with a mean ± std band, per-class paired deltas.

What a reader of a benchmark looks at before the tables (tools/report.py, benchmarks/sweep.py,
benchmarks/converged.py): one curve per method of a validation metric against the iteration,
the band the seeds span, and one bar per class of ``run - baseline`` paired by seed. The
curves come from the validations logged during training (each run's
``<timestamp>/vis_data/scalars.json``, every timestamp of a resumed run); the bars from the
``metrics.json`` of the final evaluation.
"""

from __future__ import annotations

import glob
import json
import os
import os.path as osp
import warnings
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from uda.evaluation.seed_report import find_metrics


def read_curve(work_dir: str, key: str = 'mIoU') -> list[tuple[int, float]]:
    """``(iteration, value)`` of every logged validation of ``key`` in one run, by iteration.

    A resumed run writes one ``scalars.json`` per start; a later start's value of an iteration
    replaces an earlier one (the run it resumed was killed after logging it).
    """
    points: dict[int, float] = {}
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    for path in files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                row = json.loads(line)
                if key in row and 'step' in row and row[key] is not None:
                    points[int(row['step'])] = float(row[key])
    return sorted(points.items())


def curve_band(
    work_dirs: Sequence[str], key: str = 'mIoU'
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Iterations, mean and sample std (0 for one run) of ``key`` over the runs' curves.

    Only iterations every run has logged are kept, so a band never mixes seeds with one that
    stopped early. Returns (steps, mean, std, number of runs with a curve).
    """
    curves = [dict(read_curve(d, key)) for d in work_dirs]
    curves = [c for c in curves if c]
    if not curves:
        return np.zeros(0), np.zeros(0), np.zeros(0), 0
    common = sorted(set.intersection(*(set(c) for c in curves)))
    values = np.array([[c[s] for s in common] for c in curves], dtype=float)
    std = values.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(common))
    return np.array(common), values.mean(axis=0), std, len(curves)


def per_class_deltas(
    run_dirs: Sequence[str], baseline_dirs: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """Class names and ``[seeds, classes]`` IoU differences ``run - baseline``, paired in order.

    ``run_dirs[i]`` and ``baseline_dirs[i]`` are the same seed; classes without an IoU in either
    run of a pair (absent from the evaluated frames) are NaN.
    """
    if len(run_dirs) != len(baseline_dirs) or not run_dirs:
        raise ValueError(
            f'Per-class deltas pair runs by seed: got {len(run_dirs)} runs and '
            f'{len(baseline_dirs)} baselines; give one baseline work dir per run, in seed order.'
        )
    names: Optional[list[str]] = None
    rows = []
    for run, base in zip(run_dirs, baseline_dirs):
        reports = []
        for d in (run, base):
            with open(find_metrics(d)) as f:
                reports.append(json.load(f))
        r, b = reports
        if list(r['IoU']) != list(b['IoU']):
            raise ValueError(
                f'{run} and {base} evaluate different classes; pair runs of one protocol.'
            )
        names = names or list(r['IoU'])
        rows.append(
            [
                np.nan if r['IoU'][c] is None or b['IoU'][c] is None else r['IoU'][c] - b['IoU'][c]
                for c in names
            ]
        )
    return names or [], np.array(rows, dtype=float)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use('Agg')  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    groups: Mapping[str, Sequence[str]],
    out_file: str,
    key: str = 'mIoU',
    title: Optional[str] = None,
) -> Optional[str]:
    """One line per group (a method's seeds) with its mean ± std band; None if nothing logged."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = 0
    for name, dirs in groups.items():
        steps, mean, std, n = curve_band(dirs, key)
        if not len(steps):
            continue
        (line,) = ax.plot(steps, mean, marker='o', ms=3, label=f'{name} (n={n})')
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel('iteration')
    ax.set_ylabel(f'validation {key}')
    ax.set_title(title or f'validation {key}: mean ± std over seeds')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def plot_class_deltas(
    runs: Mapping[str, Sequence[str]],
    baseline_dirs: Sequence[str],
    out_file: str,
    baseline: str = 'baseline',
) -> Optional[str]:
    """Grouped bars per class of the paired IoU delta (mean, std as error bar) of each run."""
    deltas = {name: per_class_deltas(dirs, baseline_dirs) for name, dirs in runs.items()}
    if not deltas:
        return None
    plt = _pyplot()
    classes = next(iter(deltas.values()))[0]
    x = np.arange(len(classes))
    width = 0.8 / len(deltas)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(classes) * max(1, len(deltas))), 4.2))
    for i, (name, (_, d)) in enumerate(deltas.items()):
        with warnings.catch_warnings():  # a class missing from every pair: an empty mean
            warnings.simplefilter('ignore', RuntimeWarning)
            mean = np.nanmean(d, axis=0) if len(d) else np.full(len(classes), np.nan)
            std = np.nanstd(d, axis=0, ddof=1) if len(d) > 1 else np.zeros(len(classes))
        ax.bar(
            x + (i - (len(deltas) - 1) / 2) * width, mean, width, yerr=std, capsize=2, label=name
        )
    ax.axhline(0, color='black', lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=45, ha='right', fontsize=8)
    ax.set_ylabel(f'IoU − {baseline} (paired by seed)')
    ax.set_title(f'per-class change against {baseline}: mean ± std over seeds')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


def add_images_to_tensorboard(pngs: Sequence[str], log_dir: str) -> None:
    """Write the pictures into a TensorBoard event file (the IMAGES tab of ``log_dir``)."""
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir)
    try:
        for png in pngs:
            img = np.asarray(Image.open(png).convert('RGB'))
            writer.add_image(osp.splitext(osp.basename(png))[0], img, 0, dataformats='HWC')
    finally:
        writer.close()
