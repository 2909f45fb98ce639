"""Confusion-matrix picture: where the errors of each class go."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def plot_confusion(
    conf: np.ndarray,
    names: Sequence[str],
    path: str,
    ids: Sequence[int] | None = None,
    title: str = '',
) -> None:
    """Save a row-normalised confusion matrix (rows = ground truth, cells in % of the row).

    Args:
        conf: [C, C] pixel counts, rows = ground truth, columns = prediction.
        names: Class names of the rows/columns of ``conf``.
        path: Output file (``.png``); its folder is created.
        ids: Classes to show (e.g. the evaluation protocol's); all by default.
        title: Figure title.
    """
    import matplotlib

    matplotlib.use('Agg')  # files only: no display on servers
    import matplotlib.pyplot as plt

    ids = list(range(len(conf))) if ids is None else list(ids)
    sub = conf[np.ix_(ids, ids)].astype(np.float64)
    # Normalise by every prediction of the row, so mass predicted as classes outside ``ids``
    # shows as a row summing to less than 100 %.
    rows = conf[ids].sum(1, keepdims=True).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        norm = np.where(rows > 0, 100 * sub / rows, np.nan)
    labels = [names[i] for i in ids]
    n = len(ids)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(np.nan_to_num(norm), cmap='Blues', vmin=0, vmax=100)
    ax.set_xticks(range(n), labels, rotation=90)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    if title:
        ax.set_title(title)
    if n <= 30:
        for r in range(n):
            for c in range(n):
                v = norm[r, c]
                if np.isfinite(v) and v >= 0.5:
                    ax.text(
                        c,
                        r,
                        f'{v:.0f}',
                        ha='center',
                        va='center',
                        fontsize=7,
                        color='white' if v > 50 else 'black',
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='% of ground-truth pixels')
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
