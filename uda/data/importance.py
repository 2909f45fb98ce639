"""Class-balanced importance sampling of target images (SAC, Araslanov & Roth, CVPR 2021).

A baseline's predictions on the target training set give, per image, how many pixels of each
class it holds (``tools/compute_is_weights.py`` writes them to a JSON file). Sampling then
draws a class uniformly and an image with probability ``prior / N + (1 - prior) * share``,
where ``share`` is the image's fraction of that class's predicted pixels, so images with rare
classes come up more often than uniform sampling would show them.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from uda.data.multi_branch import MultiBranchInfiniteSampler, sampling_branch
from uda.registry import DATA_SAMPLERS

IS_TOOL = 'tools/compute_is_weights.py CONFIG CHECKPOINT --out PATH'


def load_class_counts(
    path: str,
    num_images: int,
    what: str = 'Importance weights',
    tool: str = IS_TOOL,
    role: str = 'target',
) -> np.ndarray:
    """Read per-image class pixel counts [N, C] from a statistics file; NaN rows = no stats.

    The file is ``{"num_classes": C, "images": [{"index": i, "img_path": p,
    "counts": [...]}, ...]}``, the layout of ``tools/compute_is_weights.py`` (SAC's importance
    sampling) and ``tools/compute_rcs_stats.py`` (rare-class sampling); ``what``, ``tool`` and
    ``role`` (the dataset's branch) name them in errors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {path}. Write it with {tool}.')
    try:
        with open(path) as f:
            data = json.load(f)
        num_classes = int(data['num_classes'])
        entries = data['images']
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f'{what} file {path} is malformed ({err}); regenerate it with {tool}.'
        ) from err
    counts = np.full((num_images, num_classes), np.nan)
    for e in entries:
        i = int(e['index'])
        if not 0 <= i < num_images:
            raise ValueError(
                f'{path}: image index {i} outside the {role} dataset (size {num_images}); the '
                f'file belongs to another dataset. Regenerate it with {tool}.'
            )
        if len(e['counts']) != num_classes:
            raise ValueError(
                f'{path}: image {i} has {len(e["counts"])} counts, expected {num_classes}.'
            )
        counts[i] = e['counts']
    return counts


def class_image_probabilities(counts: np.ndarray, prior: float = 0.25) -> np.ndarray:
    """P(image | class) [C', N] = ``prior / N + (1 - prior) * share`` for the C' classes
    that some image holds (one uniform row when none does).

    ``share[c, i]`` is image ``i``'s fraction of the class-``c`` pixels of all images. Images
    without statistics (NaN rows) get the uniform share ``1 / N``.
    """
    n = counts.shape[0]
    known = ~np.isnan(counts).any(1)
    c = np.where(known[:, None], counts, 0.0).T  # [C, N]
    total = c.sum(1, keepdims=True)
    share = np.divide(c, total, out=np.zeros_like(c), where=total > 0)
    # Images without statistics get the uniform share, then each row is renormalised.
    share[:, ~known] = 1.0 / n
    share = share[total[:, 0] > 0]
    if share.shape[0] == 0:
        share = np.full((1, n), 1.0 / n)
    p = prior / n + (1.0 - prior) * share
    return p / p.sum(1, keepdims=True)


@DATA_SAMPLERS.register_module()
class ImportanceSampler(MultiBranchInfiniteSampler):
    """Infinite sampler whose ``branch`` is drawn class-uniformly by importance weights.

    Other branches (the source) stream as in :class:`MultiBranchInfiniteSampler`.

    Args:
        dataset: A :class:`MultiBranchDataset` (or a single dataset = the branch itself).
        weights_file: JSON from ``tools/compute_is_weights.py``.
        branch: Branch sampled by importance (``'target'``).
        prior: Weight of the uniform part (0.25 in the reference).
        shuffle: Shuffle the other branches.
        seed: Base seed.
    """

    def __init__(
        self,
        dataset: Dataset,
        weights_file: str,
        branch: str = 'target',
        prior: float = 0.25,
        shuffle: bool = True,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed)
        self.branch_index, _ = sampling_branch(dataset, branch, 'ImportanceSampler')
        n = self.sizes[self.branch_index]
        self.probs = torch.from_numpy(
            class_image_probabilities(load_class_counts(weights_file, n), prior)
        )

    def branch_stream(self, branch: int, size: int) -> Iterator[int]:
        if branch != self.branch_index:
            yield from super().branch_stream(branch, size)
            return
        g = torch.Generator()
        g.manual_seed(self.seed + 7919 * branch)
        C = self.probs.shape[0]
        while True:
            classes = torch.randint(C, (1024,), generator=g)
            for c in classes.tolist():
                yield int(torch.multinomial(self.probs[c], 1, generator=g))
