"""Cityscapes in its official layout, with the official labelId -> trainId map."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from uda.data.base import FilePairDataset, pair_files, require_dir, scan_files
from uda.registry import DATASETS

IMG_SUFFIX = '_leftImg8bit.png'
LABEL_SUFFIX = '_gtFine_labelIds.png'


@DATASETS.register_module()
class CityscapesDataset(FilePairDataset):
    """Cityscapes images and fine labels as downloaded (no ``createTrainIdLabelImgs`` step)::

        data_root/leftImg8bit/{train,val,test}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
        data_root/gtFine/{train,val,test}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

    labelIds (0-33) map to the 19 trainIds with the official table
    (``uda/data/label_maps/cityscapes_labelids``). With ``with_label=False`` only images are
    read (the unlabelled target training split); gtFine need not exist. The UDA setting
    resizes to 1024x512: ``resize=(512, 1024)`` (labels nearest-neighbour).

    Args:
        data_root: Cityscapes folder (``CITYSCAPES_ROOT`` environment variable in the configs).
        split: ``'train'``, ``'val'``, ``'test'`` (or any folder under ``leftImg8bit``).
        cities: Keep only these cities (folder names), e.g. for a quick check.
        img_dir: Image folder under ``data_root``.
        label_dir: Label folder under ``data_root``.
        label_suffix: Label file suffix; ``'_gtFine_labelTrainIds.png'`` with
            ``label_map=None`` reads pre-converted trainId files.
        skip_unpaired: Keep only complete pairs (with a warning) instead of failing.
        unmapped: ``'error'`` for a labelId outside 0-33 (default) or ``'ignore'``.
        **kwargs: See :class:`uda.data.SegDataset` (pipeline, resize, with_label ...).
    """

    def __init__(
        self,
        data_root: str,
        split: str = 'train',
        cities: Optional[Sequence[str]] = None,
        img_dir: str = 'leftImg8bit',
        label_dir: str = 'gtFine',
        label_suffix: str = LABEL_SUFFIX,
        skip_unpaired: bool = False,
        protocol: str = 'cityscapes19',
        label_map: Any = 'cityscapes_labelids',
        unmapped: str = 'error',
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol=protocol, label_map=label_map, unmapped=unmapped, **kwargs)
        self.split, self.data_root = split, data_root
        fix = (
            'Set the CITYSCAPES_ROOT environment variable (or data_root via --cfg-options) '
            'to the folder holding leftImg8bit/ and gtFine/ (docs/datasets.md).'
        )
        require_dir(data_root, 'Cityscapes root', fix)
        require_dir(os.path.join(data_root, img_dir), 'Cityscapes image folder', fix)
        img_root = os.path.join(data_root, img_dir, split)
        require_dir(
            img_root,
            f'Cityscapes split folder (split={split!r})',
            f'Pick one of the splits under {os.path.join(data_root, img_dir)}.',
        )
        images = self._scan(img_root, IMG_SUFFIX, cities)
        if not images:
            raise FileNotFoundError(
                f'Cityscapes split folder {img_root} has no {{city}}/*{IMG_SUFFIX} files.'
            )
        if self.reads_label:
            lbl_root = os.path.join(data_root, label_dir, split)
            require_dir(
                lbl_root,
                f'Cityscapes label folder (split={split!r})',
                'Download gtFine_trainvaltest, or set with_label=False for images only.',
            )
            labels = self._scan(lbl_root, label_suffix, cities)
            self.items = list(pair_files(images, labels, img_root, lbl_root, skip_unpaired))
        else:
            self.items = [(images[k], None) for k in sorted(images)]
        if not self.items:
            raise ValueError(f'Cityscapes {split} in {data_root} yields no image/label pairs.')

    @staticmethod
    def _scan(root: str, suffix: str, cities: Optional[Sequence[str]]) -> dict[str, str]:
        found = scan_files(root, suffix, recursive=True)
        if cities is not None:
            present = sorted({k.split(os.sep)[0] for k in found})
            missing = [c for c in cities if c not in present]
            if missing:
                raise ValueError(f'Cities {missing} are not in {root}; it has {present}.')
            found = {k: v for k, v in found.items() if k.split(os.sep)[0] in cities}
        return found
