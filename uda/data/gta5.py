"""GTA5 (Playing for Data): rendered frames with Cityscapes labelIds, official layout."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from uda.data.base import FilePairDataset, pair_files, require_dir, scan_files
from uda.registry import DATASETS


@DATASETS.register_module()
class GTA5Dataset(FilePairDataset):
    """GTA5 frames and labels as downloaded (no conversion step)::

        data_root/images/00001.png ... 24966.png    RGB, 1914x1052
        data_root/labels/00001.png ... 24966.png    Cityscapes labelIds 0-33 (palette PNG)

    Labels map to the 19 Cityscapes trainIds with ``uda/data/label_maps/cityscapes_labelids``
    (ids outside the 19 classes -> 255; a value outside 0-33 is an error). The usual UDA
    setting resizes frames to 1280x720: ``resize=(720, 1280)``.

    Args:
        data_root: GTA5 folder (the ``GTA5_ROOT`` environment variable in the configs).
        img_dir: Image folder under ``data_root``.
        label_dir: Label folder under ``data_root``.
        names: Optional file stems to keep (e.g. a split), in this order.
        skip_unpaired: Train on the pairs only when some image or label is missing (a warning
            names the count) instead of failing.
        unmapped: ``'error'`` for a label id the map does not list (default) or ``'ignore'``.
        **kwargs: See :class:`uda.data.SegDataset` (pipeline, resize, with_label ...).
    """

    def __init__(
        self,
        data_root: str,
        img_dir: str = 'images',
        label_dir: str = 'labels',
        names: Optional[Sequence[str]] = None,
        skip_unpaired: bool = False,
        protocol: str = 'cityscapes19',
        label_map: Any = 'cityscapes_labelids',
        unmapped: str = 'error',
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol=protocol, label_map=label_map, unmapped=unmapped, **kwargs)
        fix = (
            'Set the GTA5_ROOT environment variable (or data_root via --cfg-options) to the '
            'folder holding images/ and labels/ (docs/datasets.md).'
        )
        require_dir(data_root, 'GTA5 root', fix)
        img_root = os.path.join(data_root, img_dir)
        require_dir(img_root, 'GTA5 image folder', fix)
        images = scan_files(img_root, '.png')
        if not images:
            raise FileNotFoundError(
                f'GTA5 image folder {img_root} has no .png files; expected 00001.png, 00002.png ...'
            )
        if self.reads_label:
            lbl_root = os.path.join(data_root, label_dir)
            require_dir(lbl_root, 'GTA5 label folder', fix)
            self.items = list(
                pair_files(images, scan_files(lbl_root, '.png'), img_root, lbl_root, skip_unpaired)
            )
        else:
            self.items = [(images[k], None) for k in sorted(images)]
        if names is not None:
            by_name = {os.path.basename(i)[:-4]: (i, lbl) for i, lbl in self.items}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise KeyError(
                    f'GTA5 names {missing[:5]} (of {len(missing)}) are not in '
                    f'{img_root} (with labels); fix `names`.'
                )
            self.items = [by_name[n] for n in names]
        if not self.items:
            raise ValueError(f'GTA5 in {data_root} yields no image/label pairs.')
