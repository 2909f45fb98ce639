"""Image-level labels (the classes present in an image) for weak supervision.

Three sources, chosen by a dataset's ``image_labels`` argument (:class:`uda.data.SegDataset`):

- ``'from_mask'``: the classes of the image's pixel label (the whole image, before crops), e.g.
  VOC's ``SegmentationClass`` masks, or any labelled dataset turned into a weak benchmark; the
  mask is then dropped unless ``with_label=True``.
- ``'from_cropped_mask'``: the classes of the mask after the dataset's pipeline (the crop the
  network sees). For benchmarks on scenes that show nearly every class in every image (the
  built-in scenes, CamVid frames), where whole-image labels would carry no localisation cue:
  each crop then stands for an image annotated with its tags.
- a list file, one image per line: ``image_path class [class ...]``, classes by protocol name
  (``person``, or quoted ``"traffic light"`` for names with spaces) or id (``15``); ``#``
  starts a comment. Image paths are relative to the dataset's ``data_root``.

Samples carry the class ids as ``img_labels`` (int64 [n]);
:meth:`uda.methods.StepContext.image_labels` turns them into multi-hot [B, num_classes] vectors.
"""

from __future__ import annotations

import os
import shlex
from typing import Optional

import numpy as np

from uda.data.classes import ClassProtocol

FROM_MASK = 'from_mask'
FROM_CROPPED_MASK = 'from_cropped_mask'
FROM_MASKS = (FROM_MASK, FROM_CROPPED_MASK)


def labels_from_mask(label: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Sorted class ids (int64) present in a train-id label map, ignore index excluded."""
    ids = np.unique(label)
    return ids[(ids != ignore_index) & (ids >= 0) & (ids < num_classes)].astype(np.int64)


def parse_class(token: str, protocol: ClassProtocol, where: str) -> int:
    """A class name or id of ``protocol`` -> its id; anything else is an error naming ``where``."""
    names = list(protocol.classes)
    if token in names:
        return names.index(token)
    if token.lstrip('-').isdigit():
        cid = int(token)
        if 0 <= cid < len(names):
            return cid
        raise ValueError(
            f'{where}: class id {cid} is outside protocol {protocol.name!r} (ids '
            f'0-{len(names) - 1}). Fix the line or pick the protocol these labels use.'
        )
    raise ValueError(
        f'{where}: unknown class {token!r}; protocol {protocol.name!r} has classes {names} '
        '(names with spaces in quotes, or give ids). Fix the line or the protocol.'
    )


def read_image_labels(path: str, protocol: ClassProtocol, data_root: str) -> dict[str, np.ndarray]:
    """Parse an image-label list file into ``{normalised image path: class ids}``.

    Args:
        path: The list file (``image_path class [class ...]`` per line).
        protocol: Class names and ids the labels refer to.
        data_root: Folder the image paths are relative to.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'Image-label file not found: {path}. Set `image_labels` in the dataset config to '
            "a list file (relative to data_root) or to 'from_mask'."
        )
    table: dict[str, np.ndarray] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            where = f'{path}:{lineno}'
            try:
                parts = shlex.split(line, comments=True)
            except ValueError as err:
                raise ValueError(f'{where}: cannot parse {line.strip()!r} ({err}).') from None
            if not parts:
                continue
            ids = sorted({parse_class(t, protocol, where) for t in parts[1:]})
            key = os.path.normpath(os.path.join(data_root, parts[0]))
            if key in table:
                raise ValueError(f'{where}: image {parts[0]!r} is listed twice; keep one line.')
            table[key] = np.asarray(ids, np.int64)
    if not table:
        raise ValueError(f'Image-label file {path} names no images; add `image class ...` lines.')
    return table


def lookup(table: dict[str, np.ndarray], img_path: str, source: str) -> np.ndarray:
    """The class ids of ``img_path``; an error naming ``source`` when it is not listed."""
    ids: Optional[np.ndarray] = table.get(os.path.normpath(img_path))
    if ids is None:
        raise KeyError(
            f'Image {img_path} has no line in the image-label file {source}; add '
            '`<image path relative to data_root> class ...` for it (an image without classes '
            'is a line with the path alone).'
        )
    return ids


__all__ = [
    'FROM_CROPPED_MASK',
    'FROM_MASK',
    'FROM_MASKS',
    'labels_from_mask',
    'lookup',
    'parse_class',
    'read_image_labels',
]
