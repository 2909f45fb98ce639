"""Pascal VOC 2012 segmentation (and the SBD-augmented training set) in the official layout."""

from __future__ import annotations

import os
from typing import Any, Optional

from uda.data.base import FilePairDataset, require_dir
from uda.data.image_labels import FROM_MASKS
from uda.registry import DATASETS


@DATASETS.register_module()
class VOCDataset(FilePairDataset):
    """Pascal VOC 2012: images named by ``ImageSets/Segmentation/{split}.txt`` (one id a line).

    Layout (VOCdevkit/VOC2012)::

        data_root/JPEGImages/2007_000032.jpg
        data_root/SegmentationClass/2007_000032.png      palette PNG: ids 0-20, 255 = void
        data_root/SegmentationClassAug/...               (optional) SBD-augmented masks
        data_root/ImageSets/Segmentation/{train,val,trainval}.txt
        data_root/ImageSets/Segmentation/train_aug.txt   (optional) the 10,582-image set

    For weak supervision, ``image_labels='from_mask'`` gives each image the classes of its mask
    (background included) and, with ``with_label=False``, drops the mask: the image-level labels
    of the reference's ``train_augvoc`` list (visinf/1-stage-wseg ``data/train_augvoc.txt``,
    derived from the SBD masks) come out the same way with ``label_dir='SegmentationClassAug'``.

    Args:
        data_root: The VOC2012 folder (``VOC_ROOT`` in the configs).
        split: Reads ``ImageSets/Segmentation/{split}.txt``.
        list_file: Another id list instead (relative to ``data_root``).
        img_dir: Image folder (``JPEGImages``).
        label_dir: Mask folder (``SegmentationClass`` or ``SegmentationClassAug``).
        protocol: ``'voc21'``.
        **kwargs: See :class:`uda.data.SegDataset` (pipeline, with_label, image_labels ...).
    """

    def __init__(
        self,
        data_root: str,
        split: str = 'train',
        list_file: Optional[str] = None,
        img_dir: str = 'JPEGImages',
        label_dir: str = 'SegmentationClass',
        protocol: str = 'voc21',
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol=protocol, **kwargs)
        self.data_root, self.split = data_root, split
        fix = (
            'Set the VOC_ROOT environment variable (or data_root via --cfg-options) to the '
            'VOC2012 folder holding JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/.'
        )
        require_dir(data_root, 'VOC root', fix)
        rel = list_file or os.path.join('ImageSets', 'Segmentation', f'{split}.txt')
        path = rel if os.path.isabs(rel) else os.path.join(data_root, rel)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'VOC id list {path} not found (split={split!r}). {fix}')
        with open(path) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        if not ids:
            raise ValueError(f'VOC id list {path} is empty; it needs one image id a line.')
        img_root = os.path.join(data_root, img_dir)
        lbl_root = os.path.join(data_root, label_dir)
        self.items = [
            (
                os.path.join(img_root, f'{i}.jpg'),
                os.path.join(lbl_root, f'{i}.png') if self.reads_label else None,
            )
            for i in ids
        ]
        missing = [p for it in self.items for p in it if p is not None and not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} file(s) of the ids in {path} do not exist, first: '
                f'{missing[0]}. Check data_root, img_dir and label_dir ({label_dir!r}).'
            )
        if self.image_labels is not None and self.image_labels not in FROM_MASKS:
            for img, _ in self.items:
                self.image_labels_of(img, None)
