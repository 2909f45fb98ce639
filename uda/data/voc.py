"""Pascal VOC 2012 (+ the SBD augmented labels) in their official layouts."""

from __future__ import annotations

import os
from typing import Any, Optional

from uda.data.base import FilePairDataset, require_dir
from uda.data.image_labels import FROM_MASKS
from uda.registry import DATASETS


@DATASETS.register_module()
class VOCDataset(FilePairDataset):
    """Pascal VOC 2012 segmentation, 21 classes (background + 20), 255 = boundary / ignore::

        data_root/JPEGImages/2007_000032.jpg
        data_root/SegmentationClass/2007_000032.png      (official, palette PNG: 1464 + 1449)
        data_root/SegmentationClassAug/2007_000032.png   (SBD-augmented, grey PNG: 10582)
        data_root/ImageSets/Segmentation/{train,val,trainval,trainaug}.txt  (one id per line)

    Palette PNGs decode to their indices (PIL mode 'P'), which are the class ids. The
    semi-supervised Pascal protocol (UniMatch, LiheYoung/UniMatch ``splits/pascal``) draws its
    1/16 ... 1/2 splits from the 10582 ``trainaug`` images with ``SegmentationClassAug``
    labels, and the 92 ... 1464 splits from the 1464 official ``train`` images; UniMatch names
    the augmented folder ``SegmentationClass``, so its split files' mask column is ignored here
    (labels come from ``label_dir``; :class:`uda.data.SemiSplit` matches the image column).

    For weak supervision, ``image_labels='from_mask'`` gives each image the classes of its mask
    (background included) and, with ``with_label=False``, drops the mask: the image-level labels
    of the reference's ``train_augvoc`` list (visinf/1-stage-wseg ``data/train_augvoc.txt``,
    derived from the SBD masks) come out the same way with ``label_dir='SegmentationClassAug'``.

    Args:
        data_root: The ``VOC2012`` folder (``VOC_ROOT`` environment variable in the configs).
        split: Id list ``ImageSets/Segmentation/{split}.txt`` (``train``, ``val``, ``trainaug``).
        list_file: Another id list instead (relative to ``data_root`` or absolute).
        label_dir: ``'SegmentationClass'`` (official) or ``'SegmentationClassAug'`` (SBD).
        img_dir: Image folder.
        img_suffix: Image file suffix.
        label_suffix: Label file suffix.
        **kwargs: See :class:`uda.data.SegDataset` (pipeline, with_label, image_labels,
            resize ...).
    """

    def __init__(
        self,
        data_root: str,
        split: str = 'train',
        list_file: Optional[str] = None,
        label_dir: str = 'SegmentationClass',
        img_dir: str = 'JPEGImages',
        img_suffix: str = '.jpg',
        label_suffix: str = '.png',
        protocol: str = 'voc21',
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol=protocol, **kwargs)
        fix = (
            'Set the VOC_ROOT environment variable (or data_root via --cfg-options) to the '
            'VOC2012 folder holding JPEGImages/, SegmentationClass/ and ImageSets/ '
            '(docs/semi_supervised.md).'
        )
        require_dir(data_root, 'VOC root', fix)
        self.data_root, self.split = data_root, split
        rel = list_file or os.path.join('ImageSets', 'Segmentation', f'{split}.txt')
        path = rel if os.path.isabs(rel) else os.path.join(data_root, rel)
        if not os.path.isfile(path):
            sets = os.path.join(data_root, 'ImageSets', 'Segmentation')
            have = sorted(os.listdir(sets)) if os.path.isdir(sets) else []
            raise FileNotFoundError(
                f'VOC id list {path} not found (split={split!r}); {sets} holds {have}. The '
                'SBD trainaug list comes with SegmentationClassAug (e.g. mmsegmentation '
                'tools/dataset_converters/voc_aug.py writes it).'
            )
        with open(path) as f:
            ids = [line.split()[0] for line in f if line.split()]
        if not ids:
            raise ValueError(f'VOC id list {path} is empty.')
        img_root = os.path.join(data_root, img_dir)
        require_dir(img_root, 'VOC image folder', fix)
        lbl_root = os.path.join(data_root, label_dir)
        if self.reads_label:
            require_dir(
                lbl_root,
                'VOC label folder',
                "Use label_dir='SegmentationClassAug' for the SBD-augmented labels, or "
                'with_label=False for images only.',
            )
        self.items = [
            (
                os.path.join(img_root, i + img_suffix),
                os.path.join(lbl_root, i + label_suffix) if self.reads_label else None,
            )
            for i in ids
        ]
        missing = [p for it in self.items for p in it if p and not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} file(s) of {path} are missing, first: {missing[0]}. '
                'Check data_root and the folders (trainaug needs '
                "label_dir='SegmentationClassAug')."
            )
        if self.image_labels is not None and self.image_labels not in FROM_MASKS:
            for img, _ in self.items:  # a list file's labels: fail now, naming the line
                self.image_labels_of(img, None)
