"""Base of the segmentation datasets: decoding, label checks, augmentation and packing.

A sample is ``{'inputs': uint8 [3, H, W], 'data_samples': {...}}`` where the data sample holds
``gt_sem_seg`` (int64 [H, W], 255 = ignore) when labels exist, plus ``img_path`` and
``ori_shape``. Normalisation, padding and batching happen on the device in
:class:`uda.models.SegDataPreprocessor`, so workers only decode and augment.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.logging import print_log
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from uda.data.classes import ClassProtocol, LabelMap, get_protocol, resolve_label_map
from uda.data.image_labels import (
    FROM_CROPPED_MASK,
    FROM_MASKS,
    labels_from_mask,
    lookup,
    read_image_labels,
)
from uda.data.pipelines import apply_pipeline, build_pipeline

# PIL modes of 16- and 32-bit integer grey images (16-bit PNG and TIFF decode to these).
_WIDE_GREY = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')
# EXIF orientations (tag 0x0112) that swap width and height: 5-8 (transpose, 90 / 270 degrees).
_EXIF_ORIENTATION, _SWAPS_AXES = 0x0112, (5, 6, 7, 8)


def exif_orientation(path: str) -> int:
    """The EXIF orientation of an image file (1 = as stored; 0 when it cannot be read)."""
    try:
        with Image.open(path) as im:
            return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
        return 0


def to_rgb(im: Image.Image, path: str) -> np.ndarray:
    """An opened image as RGB uint8 [H, W, 3], by the rule of :func:`read_image`."""
    mode = im.mode
    if mode == 'RGB':
        return np.asarray(im)
    if mode in _WIDE_GREY:
        grey = np.asarray(im).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ValueError(
                f'Image {path} is a {mode} image with values outside 0-65535; convert it to '
                '8-bit RGB (or 16-bit grey) before using it.'
            )
        # 16 -> 8 bits by scaling (0 -> 0, 65535 -> 255), not by clipping at 255 as PIL's
        # convert('RGB') does, which turns a 16-bit photo white.
        grey8 = ((grey + 128) // 257).astype(np.uint8)
        return np.repeat(grey8[..., None], 3, axis=2)
    if mode == 'F':
        raise ValueError(
            f'Image {path} holds 32-bit floating-point pixels (mode F): their range is not '
            'known. Convert it to 8-bit RGB (or 16-bit grey) before using it.'
        )
    if mode in ('P', 'PA'):  # through RGBA so a transparency entry is read, then dropped
        im = im.convert('RGBA')
    # L, LA, 1, RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV: PIL's conversion (alpha dropped).
    return np.asarray(im.convert('RGB'))


def read_image(path: str, exif_transpose: bool = False) -> np.ndarray:
    """Read an image file as RGB uint8 [H, W, 3], with an error that names the file.

    The one image reader of every dataset and of ``tools/infer.py`` (issue 25). The rule:

    - 8-bit RGB as stored; grey (L, 1), grey + alpha, RGBA, palette (P, with or without
      transparency), CMYK and YCbCr through PIL's conversion to RGB, the alpha channel
      dropped (the stored colours are used, not composited on a background);
    - 16-bit grey (PNG, TIFF) scaled to 8 bits (``(v + 128) // 257``); 16-bit RGB PNGs
      keep their 8 high bits (PIL's decoder); 32-bit float images are an error;
    - JPEG, PNG, WebP, TIFF, BMP and what else PIL opens; of a multi-page file the first page;
    - EXIF orientation: ``exif_transpose=True`` (the inference tools) applies it
      (``PIL.ImageOps.exif_transpose``), so a phone photo is predicted as a person sees it.
      Datasets keep the default False: pixels as stored, like their label files, which have
      no EXIF; a dataset never rotates an image without its label
      (:func:`check_pair_size` names the orientation when a label fits only the rotated
      image).

    Raises:
        FileNotFoundError: No such file.
        OSError: The file is truncated or not an image.
        ValueError: Pixels without a defined 8-bit meaning (float).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Image not found: {path}. Check the data root and list file.')
    try:
        with Image.open(path) as opened:
            im: Image.Image = opened
            if exif_transpose:
                im = ImageOps.exif_transpose(opened)
            return to_rgb(im, path)
    except Image.DecompressionBombError as err:
        raise ValueError(
            f'Image {path} is too large for PIL ({err}). If you trust the file, raise the '
            'limit first: PIL.Image.MAX_IMAGE_PIXELS = None.'
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(
            f'Cannot read image {path} ({err}); the file is truncated or not an image. '
            'Re-export it or remove it from the list.'
        ) from err


def read_label(path: str) -> np.ndarray:
    """Read a label map as an integer array [H, W] of raw ids.

    Single-channel files hold the ids: 8-bit grey (L), palette PNGs (P: the palette *index*
    is the id, as Pascal VOC and GTA5 store them; the colours are only for viewing), 16-bit
    grey PNGs (ids 0-65535, brought to train ids by the dataset's ``label_map``). An RGB(A)
    file is accepted only when its three channels are equal (grey saved as RGB); a colour
    label is an error that names the file, since its first channel is not an id.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Label not found: {path}. Check the data root and list file.')
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == 'F':
                raise ValueError(
                    f'Label {path} holds floating-point values (mode F); labels are integer '
                    'ids in 8-bit, palette or 16-bit PNGs. Save the ids as a 16-bit PNG.'
                )
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OSError(
            f'Cannot read label {path} ({err}); the file is truncated or not an image. '
            'Re-export it or remove it from the list.'
        ) from err
    if arr.ndim == 3:
        rgb = arr[..., :3]
        if rgb.shape[-1] == 3 and not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        ):
            raise ValueError(
                f'Label {path} is a colour ({mode}) image: labels hold one class id per pixel '
                '(8-bit grey, palette or 16-bit PNG). Convert the colours to ids first, or '
                'save it as a palette PNG whose indices are the ids.'
            )
        arr = arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def _ranges(ids: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2, 5'`` for error messages."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ', '.join(str(a) if a == b else f'{a}-{b}' for a, b in runs)


def require_dir(path: str, what: str, fix: str) -> None:
    """Fail with a message naming ``path`` when it is not a folder."""
    if not os.path.isdir(path):
        parent = os.path.dirname(os.path.normpath(path))
        hint = ''
        if os.path.isdir(parent):
            hint = f' {parent} holds {sorted(os.listdir(parent))[:20]}.'
        raise FileNotFoundError(f'{what} {path} is not a folder.{hint} {fix}')


def scan_files(folder: str, suffix: str, recursive: bool = False) -> dict[str, str]:
    """``{key: path}`` of the files under ``folder`` whose name ends with ``suffix``.

    The key is the path relative to ``folder`` without the suffix, so an image and its label
    pair up by key (``aachen/aachen_000000_000019`` for Cityscapes, ``00001`` for GTA5).
    """
    found: dict[str, str] = {}
    walk: Iterator[tuple[str, list[str]]]
    if recursive:
        walk = ((d, sorted(fs)) for d, _, fs in sorted(os.walk(folder)))
    else:
        walk = iter([(folder, sorted(os.listdir(folder)))])
    for d, files in walk:
        for f in files:
            if f.endswith(suffix) and os.path.isfile(os.path.join(d, f)):
                rel = os.path.relpath(os.path.join(d, f), folder)
                found[rel[: -len(suffix)]] = os.path.join(d, f)
    return found


def pair_files(
    images: dict[str, str],
    labels: dict[str, str],
    image_where: str,
    label_where: str,
    skip_unpaired: bool = False,
) -> list[tuple[str, str]]:
    """Pair images and labels by key; unpaired files are an error unless ``skip_unpaired``.

    Returns:
        ``[(image_path, label_path), ...]`` sorted by key.
    """
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if (no_label or no_image) and not skip_unpaired:
        parts = []
        if no_label:
            parts.append(
                f'{len(no_label)} image(s) in {image_where} have no label in '
                f'{label_where}, first: {images[no_label[0]]}'
            )
        if no_image:
            parts.append(
                f'{len(no_image)} label(s) in {label_where} have no image in '
                f'{image_where}, first: {labels[no_image[0]]}'
            )
        raise FileNotFoundError(
            '; '.join(parts) + '. Restore the missing files, or set '
            'skip_unpaired=True in the dataset config to train on the '
            'pairs only.'
        )
    if no_label or no_image:
        print_log(
            f'Skipping {len(no_label)} image(s) without label and {len(no_image)} '
            f'label(s) without image ({image_where}, {label_where}); '
            'skip_unpaired=True.',
            logger='current',
            level=logging.WARNING,
        )
    return [(images[k], labels[k]) for k in sorted(set(images) & set(labels))]


def check_pair_size(image: np.ndarray, label: np.ndarray, info: dict) -> None:
    """Fail when a label's size differs from its image's (both as decoded, before any resize).

    Args:
        image: Decoded image [H, W, 3].
        label: Decoded label [H, W].
        info: ``img_path`` / ``label_path`` of the pair, named in the error.
    """
    if label.shape[:2] != image.shape[:2]:
        rotated = ''
        img_path = info.get('img_path')
        if (
            img_path
            and label.shape[:2] == image.shape[1::-1]
            and exif_orientation(str(img_path)) in _SWAPS_AXES
        ):
            rotated = (
                f' The image has EXIF orientation {exif_orientation(str(img_path))} (shown '
                'rotated by 90 degrees) and the label fits the rotated view: datasets read '
                'pixels as stored and never rotate an image without its label, so store the '
                'image upright (e.g. PIL.ImageOps.exif_transpose, then save without EXIF) or '
                'the label as stored.'
            )
        raise ValueError(
            f'Label {info.get("label_path")} is {label.shape[1]}x{label.shape[0]} but image '
            f'{info.get("img_path")} is {image.shape[1]}x{image.shape[0]} (WxH), as decoded '
            '(before `resize`). Pair each image with its own label (check the list file / '
            'folders), or bring the label to its image size with nearest-neighbour '
            'interpolation before training.' + rotated
        )


class SegDataset(Dataset):
    """Base of all datasets: decoding, label mapping and checks, augmentation, packing.

    Args:
        pipeline: Albumentations transform dicts (see :mod:`uda.data.pipelines`).
        protocol: Name of the class protocol of the labels (``uda/data/protocols``).
        label_map: Raw label id -> train id: the name of a map in ``uda/data/label_maps``
            (e.g. ``'cityscapes_labelids'``) or a dict ``{raw_id: train_id}``. Without a map,
            raw values must already be train ids or the ignore index.
        unmapped: What a raw id that the map does not list becomes: ``'ignore'`` (the ignore
            index; a hand-written partial map) or ``'error'``. The dataset families (GTA5,
            SYNTHIA, Cityscapes, CamVid) default to ``'error'``: their maps list every raw id,
            so an unlisted value means a corrupt or foreign label file.
        ignore_index: Label value that marks pixels without a class.
        with_label: Whether to read labels (False for unlabelled target images).
        resize: Optional ``(height, width)`` every image is resized to on load (bilinear; labels
            nearest-neighbour), e.g. ``(720, 1280)`` for GTA5 or ``(512, 1024)`` for Cityscapes.
            An image and its label must already have the same size (checked on the decoded
            files, so a label of another image is an error, not silently stretched); both are
            then brought to this size.
        image_labels: Image-level labels for weak supervision (:mod:`uda.data.image_labels`):
            ``'from_mask'`` (the classes of the whole pixel label, read even when
            ``with_label=False``, which then drops the mask), ``'from_cropped_mask'`` (the
            classes of the label after ``pipeline``, i.e. of the crop) or a list file
            ``image class [class ...]`` (relative to ``data_root``). Samples get
            ``img_labels`` (class ids).
    """

    def __init__(
        self,
        pipeline: Optional[Sequence[dict]] = None,
        protocol: str = 'cityscapes19',
        label_map: Union[str, dict, None] = None,
        unmapped: str = 'ignore',
        ignore_index: int = 255,
        with_label: bool = True,
        resize: Optional[Sequence[int]] = None,
        image_labels: Optional[str] = None,
    ) -> None:
        self.protocol: ClassProtocol = get_protocol(protocol)
        if image_labels is not None and not isinstance(image_labels, str):
            raise TypeError(
                f"image_labels={image_labels!r}: give 'from_mask' or the path of a list file "
                '`image class [class ...]` (relative to data_root).'
            )
        self.image_labels = image_labels
        self._image_label_table: Optional[dict[str, np.ndarray]] = None
        self.pipeline = build_pipeline(pipeline)
        self.ignore_index = ignore_index
        self.with_label = with_label
        if unmapped not in ('error', 'ignore'):
            raise ValueError(f"unmapped={unmapped!r}: use 'error' or 'ignore'.")
        self.unmapped = unmapped
        if resize is not None and (len(resize) != 2 or min(int(v) for v in resize) <= 0):
            raise ValueError(
                f'resize={resize!r}: give (height, width) in pixels, e.g. (512, 1024).'
            )
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self.label_map: Optional[LabelMap] = resolve_label_map(label_map)
        self._lut: Optional[np.ndarray] = None
        if self.label_map is not None:
            to = self.label_map.to
            if to is not None and get_protocol(to).classes != self.protocol.classes:
                raise ValueError(
                    f"label_map '{self.label_map.name}' maps onto protocol '{to}', but the "
                    f"dataset's protocol is '{self.protocol.name}'. Set protocol='{to}' (or a "
                    'protocol over the same label space), or pick a map onto this protocol.'
                )
            # -1 marks raw ids the map does not list (checked in map_label).
            lut = np.full(65536, -1 if unmapped == 'error' else ignore_index, np.int64)
            for raw, train in self.label_map.mapping:
                if not 0 <= raw < 65536:
                    raise ValueError(
                        f"label_map '{self.label_map.name}': raw id {raw} is "
                        'outside 0-65535 (8- or 16-bit label files).'
                    )
                lut[raw] = train
            self._lut = lut
        self._seeded_for: Optional[tuple] = None

    @property
    def reads_label(self) -> bool:
        """Pixel labels are read: for the samples (``with_label``) or for image labels."""
        return self.with_label or self.image_labels in FROM_MASKS

    def image_label_table(self) -> dict[str, np.ndarray]:
        """The parsed image-label list file (read once; :func:`read_image_labels`)."""
        if self._image_label_table is None:
            assert self.image_labels is not None and self.image_labels not in FROM_MASKS
            root = getattr(self, 'data_root', '') or ''
            path = self.image_labels
            path = path if os.path.isabs(path) else os.path.join(root, path)
            self._image_label_table = read_image_labels(path, self.protocol, root)
        return self._image_label_table

    def image_labels_of(self, img_path: str, label: Optional[np.ndarray]) -> np.ndarray:
        """Class ids of one image from ``image_labels`` (its mask or the list file)."""
        if self.image_labels in FROM_MASKS:
            if label is None:
                raise ValueError(
                    f'image_labels={self.image_labels!r} but image {img_path} has no label '
                    'file; give the dataset its labels or use an image-label list file.'
                )
            return labels_from_mask(label, self.protocol.num_classes, self.ignore_index)
        return lookup(self.image_label_table(), img_path, str(self.image_labels))

    @property
    def metainfo(self) -> dict:
        return dict(
            classes=self.protocol.classes,
            palette=self.protocol.palette,
            protocol=self.protocol.name,
        )

    def load(self, index: int) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        """Return ``(image, label or None, info)``; subclasses implement it."""
        raise NotImplementedError

    def map_label(self, label: np.ndarray, path: str) -> np.ndarray:
        """Apply the label map and check every value is a class id or the ignore index."""
        if self._lut is not None and self.label_map is not None:
            if label.min() < 0 or label.max() >= len(self._lut):
                raise ValueError(
                    f'Label {path} has values outside 0-65535; label files must '
                    'be 8- or 16-bit PNGs of non-negative ids.'
                )
            raw = label
            label = self._lut[label.astype(np.int64)]
            unlisted = label < 0
            if unlisted.any():
                values = np.unique(raw[unlisted])[:10].tolist()
                listed = [r for r, _ in self.label_map.mapping]
                raise ValueError(
                    f'Label {path} has raw ids {values} that label_map '
                    f"'{self.label_map.name}' does not list (it maps ids "
                    f'{_ranges(listed)}). The file is corrupt or from another dataset; fix it, '
                    "or set unmapped='ignore' in the dataset config to treat such ids as "
                    'ignore.'
                )
        label = label.astype(np.int64)
        bad = (label >= self.protocol.num_classes) & (label != self.ignore_index) | (label < 0)
        if bad.any():
            values = np.unique(label[bad])[:10].tolist()
            raise ValueError(
                f'Label {path} has values {values} outside protocol '
                f"'{self.protocol.name}' (ids 0-{self.protocol.num_classes - 1}, ignore "
                f'{self.ignore_index}). Set `label_map` in the dataset config to map raw ids to '
                'train ids, or pick the protocol that matches these labels.'
            )
        return label

    def resize_pair(
        self, image: np.ndarray, label: Optional[np.ndarray]
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Resize to ``self.resize``: the image bilinearly, the label nearest-neighbour."""
        if self.resize is None:
            return image, label
        h, w = self.resize
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        if label is not None and label.shape[:2] != (h, w):
            # Nearest neighbour: ids must not be blended into other (wrong) ids.
            dtype = label.dtype
            src = label if dtype in (np.uint8, np.uint16) else label.astype(np.int32)
            label = cv2.resize(src, (w, h), interpolation=cv2.INTER_NEAREST).astype(dtype)
        return image, label

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
            # On the decoded arrays, before `resize`: resizing both to one size would hide a
            # label that belongs to another image (or another crop of it).
            check_pair_size(image, label, info)
        image, label = self.resize_pair(image, label)
        if label is not None:
            label = self.map_label(label, info.get('label_path', f'#{index}'))
        img_labels = None
        img_path = info.get('img_path', f'#{index}')
        if self.image_labels not in (None, FROM_CROPPED_MASK):
            # From the whole image, before crops: image-level annotation describes the image.
            img_labels = self.image_labels_of(img_path, label)
            if not self.with_label:
                label = None
        info['ori_shape'] = tuple(image.shape[:2])
        valid: Optional[np.ndarray] = None
        if label is None and self.pipeline.transforms:
            # Unlabelled: a zero mask travels through the geometric transforms, so pixels a
            # crop pads (fill_mask = the ignore index) are known and left out of consistency
            # losses (UniMatch pads unlabelled masks with 254 -> ignore; dataset/semi.py).
            image, valid = apply_pipeline(self.pipeline, image, np.zeros(image.shape[:2], np.uint8))
        else:
            image, label = apply_pipeline(
                self.pipeline, image, None if label is None else label.astype(np.uint8)
            )
        if self.image_labels == FROM_CROPPED_MASK:
            img_labels = self.image_labels_of(img_path, label)
            if not self.with_label:
                label = None
        sample = dict(
            img_path=info.get('img_path', ''),
            ori_shape=info['ori_shape'],
            img_shape=tuple(image.shape[:2]),
            index=index,
        )
        if label is not None:
            sample['gt_sem_seg'] = torch.from_numpy(np.ascontiguousarray(label)).long()
        if valid is not None and (valid == self.ignore_index).any():
            inside = np.ascontiguousarray(valid != self.ignore_index)
            sample['valid_mask'] = torch.from_numpy(inside)
        if img_labels is not None:
            sample['img_labels'] = torch.from_numpy(img_labels)
        inputs = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=sample)


class FilePairDataset(SegDataset):
    """A dataset over ``self.items``: ``(image_path, label_path or None)`` pairs.

    Subclasses find the pairs (a list file, an official folder layout) in ``__init__`` and may
    override :meth:`read_label` for label files that PIL cannot decode (16-bit RGB PNGs).
    """

    items: list[tuple[str, Optional[str]]]

    def __len__(self) -> int:
        return len(self.items)

    def read_label(self, path: str) -> np.ndarray:
        return read_label(path)

    def check_pair_sizes(self) -> None:
        """Compare every label's size with its image's from the file headers (no decoding,
        about a millisecond a pair), so a mismatched pair fails before training instead of at
        its first draw. Files PIL cannot open are left to :func:`check_pair_size` at load."""
        from PIL import Image, UnidentifiedImageError

        for img_path, lbl_path in self.items:
            if not (lbl_path and self.reads_label):
                continue
            try:
                with Image.open(img_path) as im, Image.open(lbl_path) as lb:
                    img_size, lbl_size = im.size, lb.size
            except (OSError, UnidentifiedImageError):
                continue  # reported with its path when the sample is read
            if img_size != lbl_size:
                check_pair_size(
                    np.empty((img_size[1], img_size[0], 0)),
                    np.empty((lbl_size[1], lbl_size[0])),
                    dict(img_path=img_path, label_path=lbl_path),
                )

    def load(self, index: int) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        img_path, lbl_path = self.items[index]
        info = dict(img_path=img_path, label_path=lbl_path)
        label = self.read_label(lbl_path) if (lbl_path and self.reads_label) else None
        return read_image(img_path), label, info
