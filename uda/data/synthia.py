"""SYNTHIA-RAND-CITYSCAPES: rendered frames with 16-bit label PNGs, official layout."""

from __future__ import annotations

import os
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image

from uda.data.base import FilePairDataset, pair_files, require_dir, scan_files
from uda.data.classes import get_protocol
from uda.registry import DATASETS


def read_synthia_label(path: str) -> np.ndarray:
    """Class ids of a SYNTHIA label PNG: the first channel of a 16-bit (or 8-bit) PNG.

    SYNTHIA stores the class id in the first (red) channel and the instance id in the second
    of a 16-bit RGB PNG. PIL decodes such files to 8 bits per channel (the high byte, i.e.
    zeros), so OpenCV reads them unchanged; OpenCV returns channels as BGR, so the first file
    channel is the last array channel.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Label not found: {path}. Check the data root.')
    try:
        # OpenCV can return a partly decoded image for a truncated PNG; PIL's verify checks
        # every chunk's CRC without decoding, so a damaged file fails here with its name.
        with Image.open(path) as im:
            im.verify()
    except Exception as err:  # PIL raises several types for damaged files
        raise OSError(
            f'Cannot read label {path} ({err}); the file is truncated or not a '
            'PNG. Re-extract it from the SYNTHIA archive.'
        ) from err
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError(
            f'Cannot decode label {path}; the file is truncated or not a PNG. '
            'Re-extract it from the SYNTHIA archive.'
        )
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f'Label {path} has {arr.dtype} pixels; SYNTHIA labels are 16-bit (or 8-bit) PNGs.'
        )
    if arr.ndim == 3:
        arr = arr[..., 2] if arr.shape[2] in (3, 4) else arr[..., 0]
    return arr


@DATASETS.register_module()
class SynthiaDataset(FilePairDataset):
    """SYNTHIA-RAND-CITYSCAPES frames and labels as downloaded::

        data_root/RGB/0000000.png ...            RGB, 1280x760
        data_root/GT/LABELS/0000000.png ...      16-bit PNG: class id (0-22) in channel 1

    Class ids map to Cityscapes trainIds (``uda/data/label_maps/synthia_ids``); the network
    predicts 19 classes. ``class_protocol`` keeps only the classes of the chosen protocol in
    the training labels (others -> 255): ``'synthia16'`` (the standard setting: no terrain,
    truck, train) or ``'synthia13'``. Score with ``IoUMetric(eval_protocol='synthia16')`` or
    ``'synthia13'`` (both reported with ``extra_protocols``).

    Args:
        data_root: SYNTHIA folder (``SYNTHIA_ROOT`` environment variable in the configs).
        img_dir: Image folder under ``data_root``.
        label_dir: Label folder under ``data_root``.
        class_protocol: Subset protocol of the classes kept in the labels, or None for all 19.
        skip_unpaired: Keep only complete pairs (with a warning) instead of failing.
        unmapped: ``'error'`` for a label id the map does not list (default) or ``'ignore'``.
        **kwargs: See :class:`uda.data.SegDataset` (pipeline, resize, with_label ...).
    """

    def __init__(
        self,
        data_root: str,
        img_dir: str = 'RGB',
        label_dir: str = 'GT/LABELS',
        class_protocol: Optional[str] = 'synthia16',
        skip_unpaired: bool = False,
        protocol: str = 'cityscapes19',
        label_map: Any = 'synthia_ids',
        unmapped: str = 'error',
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol=protocol, label_map=label_map, unmapped=unmapped, **kwargs)
        self.class_protocol = class_protocol
        if class_protocol is not None:
            sub = get_protocol(class_protocol)
            if sub.classes != self.protocol.classes:
                raise ValueError(
                    f"class_protocol '{class_protocol}' is not over the label "
                    f"space of protocol '{self.protocol.name}'."
                )
            keep = np.zeros(self.protocol.num_classes, bool)
            keep[list(sub.eval_ids)] = True
            self._keep: Optional[np.ndarray] = keep
        else:
            self._keep = None
        fix = (
            'Set the SYNTHIA_ROOT environment variable (or data_root via --cfg-options) to '
            'the RAND_CITYSCAPES folder holding RGB/ and GT/LABELS/ (docs/datasets.md).'
        )
        require_dir(data_root, 'SYNTHIA root', fix)
        img_root = os.path.join(data_root, img_dir)
        require_dir(img_root, 'SYNTHIA image folder', fix)
        images = scan_files(img_root, '.png')
        if not images:
            raise FileNotFoundError(f'SYNTHIA image folder {img_root} has no .png files.')
        if self.reads_label:
            lbl_root = os.path.join(data_root, label_dir)
            require_dir(lbl_root, 'SYNTHIA label folder', fix)
            self.items = list(
                pair_files(images, scan_files(lbl_root, '.png'), img_root, lbl_root, skip_unpaired)
            )
        else:
            self.items = [(images[k], None) for k in sorted(images)]
        if not self.items:
            raise ValueError(f'SYNTHIA in {data_root} yields no image/label pairs.')

    def read_label(self, path: str) -> np.ndarray:
        return read_synthia_label(path)

    def map_label(self, label: np.ndarray, path: str) -> np.ndarray:
        """Map ids to trainIds, then drop the classes outside ``class_protocol``."""
        label = super().map_label(label, path)
        if self._keep is not None:
            valid = label != self.ignore_index
            label[valid & ~self._keep[np.where(valid, label, 0)]] = self.ignore_index
        return label
