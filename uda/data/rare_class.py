"""Rare-class sampling of source images (DAFormer, Hoyer et al., CVPR 2022, arXiv:2111.14887).

Reference: lhoyer/DAFormer ``mmseg/datasets/uda_dataset.py`` (``get_rcs_class_probs``,
``UDADataset.get_rare_class_sample``). A class ``c`` is drawn with
``P(c) = softmax((1 - f_c) / T)`` (``f_c``: the share of class ``c`` among all labelled source
pixels, ``T = 0.01``), then uniformly one source image with more than ``min_pixels`` pixels of
``c``; when its random crop holds no more than ``min_pixels * min_crop_ratio`` pixels of ``c``
the crop is drawn again, up to 10 times.

Two parts, because the choice and the crop happen in different places here:

* :class:`RareClassSampler` (train_dataloader.sampler) draws ``(c, image)`` from the
  statistics file of ``tools/compute_rcs_stats.py``, seeded and sharded across ranks like
  every other stream of :class:`uda.data.MultiBranchInfiniteSampler` (DAFormer draws with the
  global NumPy RNG in the dataset);
* :class:`RareClassCrop` wraps the source dataset and re-runs its pipeline (whose random crop
  is the one to retry) until the crop holds enough pixels of ``c``. The sampler hands ``c`` to
  it inside the index: ``index = (c + 1) * N + image`` (:func:`encode_index`), an int, so it
  travels through ``MultiBranchDataset`` and DataLoader workers unchanged; a plain index
  ``< N`` loads the image without re-cropping.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from torch.utils.data import Dataset

from uda.data.importance import load_class_counts
from uda.data.multi_branch import MultiBranchInfiniteSampler, sampling_branch
from uda.registry import DATA_SAMPLERS, DATASETS

TOOL = 'tools/compute_rcs_stats.py CONFIG --out PATH'


def load_rcs_stats(path: str, num_images: int) -> np.ndarray:
    """Per-image class pixel counts [N, C] from a file of ``tools/compute_rcs_stats.py``.

    The file is ``{"num_classes": C, "images": [{"index": i, "img_path": p, "counts": [...]},
    ...]}`` with one entry per image of the source training set.
    """
    counts = load_class_counts(path, num_images, 'Rare-class statistics', TOOL, 'source')
    missing = np.flatnonzero(np.isnan(counts).any(1))
    if len(missing):
        raise ValueError(
            f'{path}: {len(missing)} of {num_images} source images have no statistics (first: '
            f'{missing[0]}); the file belongs to another dataset or split. Regenerate it with '
            f'{TOOL}.'
        )
    return counts.astype(np.int64)


def rcs_class_probabilities(
    counts: np.ndarray, temperature: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Classes present in the source labels and their sampling probabilities.

    ``f_c = n_c / sum_k n_k`` over the classes with pixels, ``P(c) = softmax((1 - f_c) / T)``
    (DAFormer ``get_rcs_class_probs``; classes without pixels are not drawn).

    Args:
        counts: [N, C] class pixel counts per image.
        temperature: T (0.01); smaller favours rare classes more.

    Returns:
        ``(classes [C'], probabilities [C'])``.
    """
    if temperature <= 0:
        raise ValueError(f'RareClassSampler: temperature={temperature}; use T > 0 (0.01).')
    total = counts.sum(0).astype(np.float64)
    classes = np.flatnonzero(total > 0)
    if len(classes) == 0:
        raise ValueError('RareClassSampler: the source labels hold no labelled pixel.')
    f = total[classes] / total[classes].sum()
    z = (1.0 - f) / temperature
    p = np.exp(z - z.max())
    return classes, p / p.sum()


def encode_index(image: int, cls: int, num_images: int) -> int:
    """The index that asks :class:`RareClassCrop` for ``image`` cropped around class ``cls``."""
    return (int(cls) + 1) * int(num_images) + int(image)


def decode_index(index: int, num_images: int) -> tuple[int, Optional[int]]:
    """``(image, class or None)`` of an index of :class:`RareClassCrop`."""
    k, image = divmod(int(index), int(num_images))
    return image, (k - 1 if k > 0 else None)


@DATASETS.register_module()
class RareClassCrop(Dataset):
    """Source dataset wrapper that re-crops until the crop holds the sampled class.

    With an index from :class:`RareClassSampler` (the image and the drawn class ``c``), the
    wrapped dataset loads the image (its pipeline draws a random crop); while the crop holds
    no more than ``min_pixels * min_crop_ratio`` pixels of ``c`` the image is loaded again
    (a new random crop), at most ``max_recrops`` times, and the last crop is kept
    (DAFormer ``get_rare_class_sample``). A wrapper rather than a hook in the pipeline: the
    random crop is any albumentations transform of the wrapped dataset, and only a full re-run
    of its pipeline redraws it. The sample's ``data_samples`` get ``rcs_class`` (``c``).

    Args:
        dataset: Config (or instance) of the labelled source dataset with a random crop.
        min_pixels: Pixels of ``c`` an image needs to be drawn for ``c`` (3000); must equal
            the sampler's ``min_pixels``.
        min_crop_ratio: The crop must hold more than ``min_pixels * min_crop_ratio`` pixels
            of ``c`` (0.5 DAFormer; 2.0 HRDA / MIC at their larger crops); 0 disables
            re-cropping.
        max_recrops: Re-crops at most (10).
    """

    def __init__(
        self,
        dataset: Any,
        min_pixels: int = 3000,
        min_crop_ratio: float = 0.5,
        max_recrops: int = 10,
    ) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        if min_crop_ratio < 0 or int(max_recrops) < 0:
            raise ValueError(
                f'RareClassCrop(min_crop_ratio={min_crop_ratio}, max_recrops={max_recrops}): '
                'use values >= 0 (DAFormer: 0.5 and 10).'
            )
        self.min_pixels = int(min_pixels)
        self.min_crop_ratio = float(min_crop_ratio)
        self.max_recrops = int(max_recrops)

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def __len__(self) -> int:
        return len(self.dataset)

    def _class_pixels(self, sample: dict, cls: int) -> int:
        gt = sample['data_samples'].get('gt_sem_seg')
        if gt is None:
            raise KeyError(
                'RareClassCrop: the wrapped dataset gives no labels (gt_sem_seg); rare-class '
                'sampling is for the labelled source branch (with_label=True).'
            )
        return int((gt == cls).sum())

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, cls = decode_index(index, len(self.dataset))
        sample = self.dataset[image]
        if cls is None:
            return sample
        if self.min_crop_ratio > 0:
            need = self.min_pixels * self.min_crop_ratio
            for _ in range(self.max_recrops):
                if self._class_pixels(sample, cls) > need:
                    break
                sample = self.dataset[image]  # the pipeline draws a new random crop
        sample['data_samples']['rcs_class'] = cls
        return sample


@DATA_SAMPLERS.register_module()
class RareClassSampler(MultiBranchInfiniteSampler):
    """Infinite sampler whose ``branch`` draws rare classes first, then an image holding one.

    Each draw: ``c ~ P(c) = softmax((1 - f_c) / T)`` (:func:`rcs_class_probabilities`), then
    uniformly an image with more than ``min_pixels`` pixels of ``c``. When the branch dataset
    is a :class:`RareClassCrop` the index also carries ``c`` so the crop is retried around it;
    otherwise plain image indices are yielded (no re-crop). Other branches stream as in
    :class:`MultiBranchInfiniteSampler`.

    Deliberate difference from DAFormer, which asserts that every class has an image above
    ``min_pixels``: classes without one are dropped (with a warning) and the rest renormalised,
    so small datasets still train.

    Args:
        dataset: A :class:`MultiBranchDataset` (or a single dataset = the branch itself).
        stats_file: JSON from ``tools/compute_rcs_stats.py`` (per-image class pixel counts).
        branch: The labelled source branch (``'source'``).
        temperature: T of the class softmax (0.01).
        min_pixels: Pixels of ``c`` an image needs in the statistics file (3000 in DAFormer,
            counted on the original GTA5 labels: ``tools/compute_rcs_stats.py --at file``).
        shuffle: Shuffle the other branches.
        seed: Base seed.
    """

    def __init__(
        self,
        dataset: Dataset,
        stats_file: str,
        branch: str = 'source',
        temperature: float = 0.01,
        min_pixels: int = 3000,
        shuffle: bool = True,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed)
        self.branch_index, target = sampling_branch(dataset, branch, 'RareClassSampler')
        self.num_images = self.sizes[self.branch_index]
        self.encode = isinstance(target, RareClassCrop)
        if isinstance(target, RareClassCrop) and target.min_pixels != int(min_pixels):
            raise ValueError(
                f'RareClassSampler(min_pixels={min_pixels}) differs from the branch '
                f"dataset's RareClassCrop(min_pixels={target.min_pixels}); give both the "
                'same value.'
            )
        if not self.encode:
            print_log(
                f"RareClassSampler: branch '{branch}' is not wrapped in RareClassCrop, so crops "
                'are not retried around the drawn class (min_crop_ratio = 0).',
                logger='current',
                level=logging.WARNING,
            )
        counts = load_rcs_stats(stats_file, self.num_images)
        classes, probs = rcs_class_probabilities(counts, temperature)
        self.images_of_class: dict[int, np.ndarray] = {}
        dropped = []
        for c in classes.tolist():
            images = np.flatnonzero(counts[:, c] > int(min_pixels))
            if len(images):
                self.images_of_class[c] = images
            else:
                dropped.append(c)
        if not self.images_of_class:
            raise ValueError(
                f'RareClassSampler: no source image has more than min_pixels={min_pixels} '
                'pixels of any class; lower min_pixels (DAFormer: 3000 on 1914x1052 GTA5 labels).'
            )
        if dropped:
            print_log(
                f'RareClassSampler: classes {dropped} have no image with more than '
                f'{min_pixels} pixels and are not drawn; lower min_pixels to include them.',
                logger='current',
                level=logging.WARNING,
            )
        keep = np.isin(classes, list(self.images_of_class))
        self.classes = classes[keep]
        self.class_probs = torch.from_numpy(probs[keep] / probs[keep].sum())

    def draw(self, g: torch.Generator) -> tuple[int, int]:
        """One ``(class, image)`` draw."""
        c = int(self.classes[int(torch.multinomial(self.class_probs, 1, generator=g))])
        images = self.images_of_class[c]
        return c, int(images[int(torch.randint(len(images), (1,), generator=g))])

    def branch_stream(self, branch: int, size: int) -> Iterator[int]:
        if branch != self.branch_index:
            yield from super().branch_stream(branch, size)
            return
        g = torch.Generator()
        g.manual_seed(self.seed + 7919 * branch)
        while True:
            c, image = self.draw(g)
            yield encode_index(image, c, self.num_images) if self.encode else image
