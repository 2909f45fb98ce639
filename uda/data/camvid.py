"""CamVid (SegNet release): list files of image/label pairs, filterable by recording sequence."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from uda.data.list_file import ListFileDataset
from uda.registry import DATASETS


def camvid_sequence(path: str) -> str:
    """Recording sequence of a CamVid frame: the file-name prefix (``0001TP_008550.png``)."""
    return os.path.basename(path).split('_', 1)[0]


@DATASETS.register_module()
class CamVidDataset(ListFileDataset):
    """CamVid frames from ``{split}.txt`` (``image label`` per line), 11 classes + void.

    Layout (the SegNet tutorial copy)::

        data_root/train.txt  train/0001TP_006690.png  trainannot/0001TP_006690.png
        data_root/val.txt    val/...                  valannot/...
        data_root/test.txt   test/...                 testannot/...

    Label PNGs hold 0-10 (classes) and 11 (void). The recording sequence is the file-name
    prefix; ``sequences`` keeps only some of them, which gives the day -> dusk shift inside
    CamVid (0001TP is recorded at dusk) without copying list files.

    Args:
        data_root: CamVid folder (the ``CAMVID_ROOT`` environment variable in the configs).
        split: ``'train'``, ``'val'`` or ``'test'``: reads ``{split}.txt``.
        list_file: Another list file instead of ``{split}.txt`` (relative to ``data_root``).
        sequences: Keep frames of these sequences only (e.g. ``['0006R0', '0016E5']``).
        protocol: ``'camvid11'``, or ``'cityscapes19'`` with
            ``label_map='camvid11_to_cityscapes19'`` for cross-dataset runs.
        label_map: Map of the raw label values (``uda/data/label_maps``).
        unmapped: ``'error'`` (a raw value the map does not list) or ``'ignore'``.
        **kwargs: See :class:`uda.data.SegDataset` (pipeline, with_label, resize ...).
    """

    def __init__(
        self,
        data_root: str,
        split: str = 'train',
        list_file: Optional[str] = None,
        sequences: Optional[Sequence[str]] = None,
        protocol: str = 'camvid11',
        label_map: Any = 'camvid11',
        unmapped: str = 'error',
        **kwargs: Any,
    ) -> None:
        if not os.path.isdir(data_root):
            raise FileNotFoundError(
                f'CamVid root {data_root!r} is not a folder. Set the CAMVID_ROOT environment '
                'variable (or data_root via --cfg-options) to the folder holding train.txt, '
                'val.txt, test.txt and the train/ trainannot/ ... folders (docs/datasets.md).'
            )
        list_file = list_file or f'{split}.txt'
        path = list_file if os.path.isabs(list_file) else os.path.join(data_root, list_file)
        if not os.path.isfile(path):
            found = sorted(f for f in os.listdir(data_root) if f.endswith('.txt'))
            raise FileNotFoundError(
                f'CamVid list {path} not found (split={split!r}); {data_root} has list files '
                f'{found}. Expected train.txt / val.txt / test.txt with `image label` lines.'
            )
        super().__init__(
            data_root=data_root,
            list_file=list_file,
            protocol=protocol,
            label_map=label_map,
            unmapped=unmapped,
            **kwargs,
        )
        self.split = split
        self.sequences = None if sequences is None else [str(s) for s in sequences]
        if self.sequences is not None:
            present = sorted({camvid_sequence(img) for img, _ in self.items})
            missing = [s for s in self.sequences if s not in present]
            if missing:
                raise ValueError(
                    f'CamVid {list_file} has no frames of sequences {missing}; its '
                    f'sequences are {present}. Fix `sequences` in the config.'
                )
            self.items = [it for it in self.items if camvid_sequence(it[0]) in self.sequences]
