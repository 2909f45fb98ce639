"""Base of the segmentation datasets: decoding, label checks, augmentation and packing.

A sample is ``{'inputs': uint8 [3, H, W], 'data_samples': {...}}`` where the data sample holds
``gt_sem_seg`` (int64 [H, W], 255 = ignore) when labels exist, plus ``img_path`` and
``ori_shape``. Normalisation, padding and batching happen on the device in
:class:`uda.models.SegDataPreprocessor`, so workers only decode and augment.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from uda.data.classes import ClassProtocol, get_protocol
from uda.data.pipelines import apply_pipeline, build_pipeline


def read_image(path: str) -> np.ndarray:
    """Read an RGB image as uint8 [H, W, 3], with an error that names the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Image not found: {path}. Check the data root and list file.')
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert('RGB'))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(f'Cannot read image {path} ({err}); the file is truncated or not an image. '
                      'Re-export it or remove it from the list.') from err


def read_label(path: str) -> np.ndarray:
    """Read a label map as an integer array [H, W] (8- or 16-bit PNG, first channel if RGB)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Label not found: {path}. Check the data root and list file.')
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(f'Cannot read label {path} ({err}); the file is truncated or not an image. '
                      'Re-export it or remove it from the list.') from err
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr


class SegDataset(Dataset):
    """Base of all datasets: decoding, label mapping and checks, augmentation, packing.

    Args:
        pipeline: Albumentations transform dicts (see :mod:`uda.data.pipelines`).
        protocol: Name of the class protocol of the labels (``uda/data/protocols``).
        label_map: Optional ``{raw_id: train_id}``; raw ids not in the map become ignore.
            Without a map, raw values must already be train ids or the ignore index.
        ignore_index: Label value that marks pixels without a class.
        with_label: Whether to read labels (False for unlabelled target images).
    """

    def __init__(self, pipeline: Optional[Sequence[dict]] = None, protocol: str = 'cityscapes19',
                 label_map: Optional[dict] = None, ignore_index: int = 255,
                 with_label: bool = True) -> None:
        self.protocol: ClassProtocol = get_protocol(protocol)
        self.pipeline = build_pipeline(pipeline)
        self.ignore_index = ignore_index
        self.with_label = with_label
        self._lut: Optional[np.ndarray] = None
        if label_map is not None:
            lut = np.full(65536, ignore_index, np.int64)
            for raw, train in label_map.items():
                lut[int(raw)] = int(train)
            self._lut = lut
        self._seeded_for: Optional[tuple] = None

    @property
    def metainfo(self) -> dict:
        return dict(classes=self.protocol.classes, palette=self.protocol.palette,
                    protocol=self.protocol.name)

    def load(self, index: int) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        """Return ``(image, label or None, info)``; subclasses implement it."""
        raise NotImplementedError

    def map_label(self, label: np.ndarray, path: str) -> np.ndarray:
        """Apply the label map and check every value is a class id or the ignore index."""
        if self._lut is not None:
            label = self._lut[label.astype(np.int64)]
        label = label.astype(np.int64)
        bad = (label >= self.protocol.num_classes) & (label != self.ignore_index) | (label < 0)
        if bad.any():
            values = np.unique(label[bad])[:10].tolist()
            raise ValueError(
                f'Label {path} has values {values} outside protocol '
                f"'{self.protocol.name}' (ids 0-{self.protocol.num_classes - 1}, ignore "
                f'{self.ignore_index}). Set `label_map` in the dataset config to map raw ids to '
                'train ids, or pick the protocol that matches these labels.')
        return label

    def _seed_pipeline(self) -> None:
        # Albumentations keeps its own RNG. Seed it from torch's per-process seed (set by the
        # Runner's seed and the DataLoader worker id), so a seeded run is reproducible and
        # workers do not repeat each other's augmentations.
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), info.id if info is not None else -1)
        if self._seeded_for != key:
            self.pipeline.set_random_seed(torch.initial_seed() % 2**32)
            self._seeded_for = key

    def __getitem__(self, index: int) -> dict[str, Any]:
        self._seed_pipeline()
        image, label, info = self.load(index)
        if label is not None:
            if label.shape[:2] != image.shape[:2]:
                raise ValueError(
                    f"Label {info.get('label_path')} is {label.shape[1]}x{label.shape[0]} but "
                    f"image {info.get('img_path')} is {image.shape[1]}x{image.shape[0]} (WxH). "
                    'Pair each image with its own label, or resize the label with '
                    'nearest-neighbour interpolation.')
            label = self.map_label(label, info.get('label_path', f'#{index}'))
        info['ori_shape'] = tuple(image.shape[:2])
        image, label = apply_pipeline(self.pipeline, image,
                                      None if label is None else label.astype(np.uint8))
        sample = dict(img_path=info.get('img_path', ''), ori_shape=info['ori_shape'],
                      img_shape=tuple(image.shape[:2]), index=index)
        if label is not None:
            sample['gt_sem_seg'] = torch.from_numpy(np.ascontiguousarray(label)).long()
        inputs = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=sample)
