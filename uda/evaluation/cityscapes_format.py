"""Cityscapes labelIds <-> trainIds, so predictions can go to the official evaluation script.

The official ``cityscapesscripts`` evaluation reads single-channel PNGs of *labelIds* (0-33),
named ``<city>_<seq>_<frame>*.png``. uda predicts the 19 trainIds, so they are mapped back
before writing. The table is the one of ``cityscapesscripts/helpers/labels.py``.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch
from PIL import Image

from uda.data.classes import get_label_map

# labelId -> trainId for the 19 evaluated classes, from the label map the datasets use
# (uda/data/label_maps/cityscapes_labelids.json); every other labelId is ignored (255).
LABELID_TO_TRAINID = {
    lid: tid for lid, tid in get_label_map('cityscapes_labelids').mapping if tid != 255
}
# labelId of each trainId 0..18 (road, sidewalk, ..., bicycle).
TRAINID_TO_LABELID = tuple(
    lid for lid, _ in sorted(LABELID_TO_TRAINID.items(), key=lambda kv: kv[1])
)


def _np(x: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def trainid_to_labelid(pred: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """[H, W] trainIds (0..18) -> uint8 labelIds; anything else becomes 0 ('unlabeled')."""
    lut = np.zeros(256, np.uint8)
    lut[: len(TRAINID_TO_LABELID)] = TRAINID_TO_LABELID
    p = _np(pred).astype(np.int64)
    if p.min(initial=0) < 0 or p.max(initial=0) > 255:
        raise ValueError(f'Predictions hold ids outside 0..255 ({p.min()}..{p.max()}).')
    return lut[p]


def labelid_to_trainid(
    label: Union[np.ndarray, torch.Tensor], ignore_index: int = 255
) -> np.ndarray:
    """[H, W] Cityscapes labelIds -> uint8 trainIds, classes outside the 19 -> ``ignore_index``."""
    lut = np.full(256, ignore_index, np.uint8)
    for lid, tid in LABELID_TO_TRAINID.items():
        lut[lid] = tid
    return lut[_np(label).astype(np.int64)]


def write_labelid_png(pred: Union[np.ndarray, torch.Tensor], path: str) -> None:
    """Save trainId predictions as a labelIds PNG for ``evalPixelLevelSemanticLabeling``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(trainid_to_labelid(pred)).save(path)
