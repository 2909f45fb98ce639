"""Semi-supervised splits: a labelled / unlabelled partition of one dataset.

Either by fraction (reproducible by seed, optionally class-balanced) or by split files in
UniMatch's format, read as they are: ``splits/<dataset>/<split>/{labeled,unlabeled}.txt``, one
``image mask`` pair per line relative to the dataset root (LiheYoung/UniMatch ``splits/``,
``dataset/semi.py``; e.g. ``splits/cityscapes/1_16/labeled.txt`` holds 186 lines).
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from uda.data.base import FilePairDataset, SegDataset
from uda.registry import DATASETS

PARTS = ('labeled', 'unlabeled')


def read_split_file(path: str) -> list[tuple[str, Optional[str]]]:
    """``[(image, mask or None), ...]`` of a UniMatch split file (paths relative to the root)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'Split file not found: {path}. UniMatch split files live in '
            'splits/<dataset>/<split>/{labeled,unlabeled}.txt (copy them from '
            'LiheYoung/UniMatch splits/), or split by fraction instead.'
        )
    out: list[tuple[str, Optional[str]]] = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) > 2:
                raise ValueError(f'{path}:{lineno}: expected `image [mask]`, got {line!r}.')
            out.append((parts[0], parts[1] if len(parts) == 2 else None))
    if not out:
        raise ValueError(f'Split file {path} is empty; it must list `image mask` lines.')
    return out


def num_labeled_of(n: int, fraction: float) -> int:
    """``ceil(n * fraction)``: UniMatch's Cityscapes 1/16 of 2975 = 186, 1/8 = 372, 1/4 = 744,
    1/2 = 1488; Pascal 1464 / 16 = 92 (LiheYoung/UniMatch ``splits/``)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f'fraction={fraction}: give a share of the images in (0, 1], e.g. 1/16.')
    return max(1, math.ceil(n * fraction - 1e-9))


def split_indices(
    n: int,
    num_labeled: int,
    seed: int = 0,
    class_presence: Optional[np.ndarray] = None,
) -> tuple[list[int], list[int]]:
    """Disjoint labelled / unlabelled image indices covering ``range(n)``.

    Random (a permutation seeded by ``seed``) or, given ``class_presence``, class-balanced:
    classes are visited from the rarest (fewest images) up; for each, images containing it are
    added (in seeded random order) until the labelled share of that class's images reaches
    ``num_labeled / n`` (at least one image) or the budget is spent; the rest of the budget is
    filled at random. So every class present in the data appears in the labelled part when
    the budget allows, which a random 1/16 draw of a small dataset does not promise.

    Args:
        n: Number of images.
        num_labeled: Size of the labelled part (1 <= num_labeled <= n).
        seed: Seed of the draw; the same seed gives the same split.
        class_presence: Optional [n, C] bool, image i contains class c.

    Returns:
        ``(labeled, unlabeled)`` sorted index lists.
    """
    if not 1 <= num_labeled <= n:
        raise ValueError(f'num_labeled={num_labeled}: give 1 <= num_labeled <= {n} (the images).')
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=g).tolist()
    if class_presence is None:
        chosen = set(order[:num_labeled])
    else:
        presence = np.asarray(class_presence, bool)
        if presence.shape[0] != n:
            raise ValueError(f'class_presence has {presence.shape[0]} rows for {n} images.')
        rank = {i: r for r, i in enumerate(order)}
        counts = presence.sum(0)
        share = num_labeled / n
        chosen = set()
        for c in np.argsort(counts, kind='stable'):
            if counts[c] == 0:
                continue
            want = max(1, math.ceil(share * counts[c] - 1e-9))
            have = sum(1 for i in chosen if presence[i, c])
            for i in sorted(np.flatnonzero(presence[:, c]).tolist(), key=rank.__getitem__):
                if have >= want or len(chosen) >= num_labeled:
                    break
                if i not in chosen:
                    chosen.add(i)
                    have += 1
        for i in order:
            if len(chosen) >= num_labeled:
                break
            chosen.add(i)
    labeled = sorted(chosen)
    unlabeled = sorted(set(range(n)) - chosen)
    return labeled, unlabeled


def class_presence_of(dataset: Dataset, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """[N, C] bool: classes present in each image's label (read without the images for
    file-pair datasets, through ``dataset[i]`` otherwise)."""
    n = len(dataset)  # type: ignore[arg-type]
    out = np.zeros((n, num_classes), bool)
    items = getattr(dataset, 'items', None)
    for i in range(n):
        if isinstance(dataset, FilePairDataset) and items is not None and items[i][1]:
            label = dataset.map_label(dataset.read_label(items[i][1]), items[i][1])
        else:
            sample = dataset[i]['data_samples']
            if 'gt_sem_seg' not in sample:
                raise ValueError(
                    'class_balanced=True needs labels for every image; build the dataset '
                    'with with_label=True (the unlabelled part drops them after the split).'
                )
            label = sample['gt_sem_seg'].numpy()
        ids = np.unique(label)
        ids = ids[(ids != ignore_index) & (ids >= 0) & (ids < num_classes)]
        out[i, ids] = True
    return out


@DATASETS.register_module()
class SemiSplit(Dataset):
    """The labelled or the unlabelled part of a dataset (one dataset family, two branches).

    Give each part its own ``SemiSplit`` with the same arguments but ``part``; the two are
    disjoint and together cover the dataset. The unlabelled part drops the labels (its
    dataset's ``with_label`` is set False after the split), so no term can read them.

    Exactly one of:

    * ``fraction`` (e.g. 1/8) or ``num_labeled`` (e.g. 46): a seeded draw, optionally
      ``class_balanced`` (see :func:`split_indices`);
    * ``split_dir``: UniMatch's ``<split_dir>/{labeled,unlabeled}.txt`` (``split_file``: one
      file for this part). Lines are matched to the dataset's images by the image path relative
      to the dataset root (``leftImg8bit/train/jena/..._leftImg8bit.png``,
      ``JPEGImages/2007_000032.jpg``); the mask column is not needed, labels come from the
      dataset (Cityscapes labelIds through the official map equal UniMatch's labelTrainIds).
      Use :class:`uda.data.ListFileDataset` with ``list_file=<split file>`` to read the masks
      the file names instead.

    Args:
        dataset: Config (or instance) of the full training dataset, with labels.
        part: ``'labeled'`` or ``'unlabeled'``.
        fraction: Share of labelled images; ``ceil(N * fraction)`` are labelled.
        num_labeled: Number of labelled images (instead of ``fraction``).
        seed: Seed of the draw (a split seed, independent of the training seed).
        class_balanced: Draw so every class is represented (reads all labels once).
        split_dir: Folder with UniMatch's ``labeled.txt`` / ``unlabeled.txt``.
        split_file: The split file of this part (instead of ``split_dir``).
        data_root: Root the split files' paths are relative to (default: the dataset's
            ``data_root``).
        keep_labels: Keep labels in the unlabelled part (analysis of pseudo-labels only).
        seed_offset: Offset of the augmentation RNG seed of the wrapped dataset. Branches
            built from one dataset config (labelled, unlabelled, the CutMix partner) would
            otherwise seed their albumentations pipelines identically
            (``SegDataset._seed_pipeline``) and draw the same crops and flips in lock-step;
            give each branch its own offset (0, 1, 2).
    """

    def __init__(
        self,
        dataset: Any,
        part: str = 'labeled',
        fraction: Optional[float] = None,
        num_labeled: Optional[int] = None,
        seed: int = 0,
        class_balanced: bool = False,
        split_dir: Optional[str] = None,
        split_file: Optional[str] = None,
        data_root: Optional[str] = None,
        keep_labels: bool = False,
        seed_offset: int = 0,
    ) -> None:
        if part not in PARTS:
            raise ValueError(f"SemiSplit(part={part!r}): use 'labeled' or 'unlabeled'.")
        given = [
            k
            for k, v in dict(
                fraction=fraction,
                num_labeled=num_labeled,
                split_dir=split_dir,
                split_file=split_file,
            ).items()
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f'SemiSplit: give exactly one of fraction, num_labeled, split_dir, split_file '
                f'(got {given or "none"}), e.g. fraction=1/8 or '
                "split_dir='splits/cityscapes/1_16'."
            )
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.part = part
        n = len(self.dataset)
        if split_dir is not None or split_file is not None:
            path = split_file or os.path.join(str(split_dir), f'{part}.txt')
            self.indices = self._match(read_split_file(path), path, data_root)
        else:
            k = num_labeled_of(n, fraction) if fraction is not None else int(num_labeled)  # type: ignore[arg-type]
            presence = None
            if class_balanced:
                num_classes = len(self.dataset.metainfo['classes'])
                ignore = int(getattr(self.dataset, 'ignore_index', 255))
                presence = class_presence_of(self.dataset, num_classes, ignore)
            labeled, unlabeled = split_indices(n, k, seed, presence)
            self.indices = labeled if part == 'labeled' else unlabeled
            if not self.indices:
                raise ValueError(
                    f'SemiSplit: the {part} part of {n} images is empty (labelled {k}); '
                    'lower fraction / num_labeled.'
                )
        if part == 'unlabeled' and not keep_labels and hasattr(self.dataset, 'with_label'):
            self.dataset.with_label = False
        self.seed_offset = int(seed_offset)

    def _match(
        self, lines: list[tuple[str, Optional[str]]], path: str, data_root: Optional[str]
    ) -> list[int]:
        items = getattr(self.dataset, 'items', None)
        root = data_root or getattr(self.dataset, 'data_root', None)
        if items is None or root is None:
            raise TypeError(
                f'SemiSplit(split_file={path!r}) matches lines to image paths: wrap a '
                'file-based dataset with a data_root (Cityscapes, VOC, CamVid, list file), or '
                'pass data_root=.'
            )
        where = {
            os.path.normpath(os.path.relpath(img, root)): i for i, (img, _) in enumerate(items)
        }
        indices, missing = [], []
        for img, _ in lines:
            i = where.get(os.path.normpath(img))
            if i is None:
                missing.append(img)
            else:
                indices.append(i)
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of {len(lines)} images in {path} are not in the dataset '
                f"(root {root}), first: {missing[0]}. Point the dataset at the split's root "
                "and split (e.g. split='train' for splits/cityscapes/*), or fix the file."
            )
        if len(set(indices)) != len(indices):
            raise ValueError(f'{path} lists an image twice; each line must be a distinct image.')
        return indices

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    @property
    def items(self) -> list:
        """``(image, label)`` pairs of this part (file-based datasets)."""
        return [self.dataset.items[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def _seed_pipeline(self) -> None:
        inner = self.dataset
        if not self.seed_offset or not isinstance(inner, SegDataset):
            return
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), info.id if info is not None else -1)
        if inner._seeded_for != key:
            seed = torch.initial_seed() + 1_000_003 * self.seed_offset
            inner.pipeline.set_random_seed(seed % 2**32)
            inner._seeded_for = key  # the dataset keeps this seed (no reseeding)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self._seed_pipeline()
        return self.dataset[self.indices[index]]


def write_split_files(
    out_dir: str,
    items: Sequence[tuple[str, Optional[str]]],
    labeled: Sequence[int],
    data_root: str,
) -> None:
    """Write ``labeled.txt`` / ``unlabeled.txt`` in UniMatch's format (``image mask`` relative
    to ``data_root``), to freeze a split drawn by fraction for other tools or papers."""
    os.makedirs(out_dir, exist_ok=True)
    chosen = set(int(i) for i in labeled)
    for part, keep in (('labeled', True), ('unlabeled', False)):
        with open(os.path.join(out_dir, f'{part}.txt'), 'w') as f:
            for i, (img, lbl) in enumerate(items):
                if (i in chosen) == keep:
                    rel = [os.path.relpath(p, data_root) for p in (img, lbl) if p]
                    f.write(' '.join(rel) + '\n')


__all__ = [
    'SemiSplit',
    'class_presence_of',
    'num_labeled_of',
    'read_split_file',
    'split_indices',
    'write_split_files',
]
