"""Losses of single-stage CAM training from image-level labels.

Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020
(arXiv:2005.08104); reference code visinf/1-stage-wseg ``models/stage_net.py`` (commit d905fca).
Class index 0 of every tensor here is the background (the constant logit); 1.. the classes
that image labels name.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def ngwp_scores(logits: Tensor, masks: Tensor) -> Tensor:
    """Normalised global weighted pooling: ``y_c = sum(x_c * m_c) / (1 + sum(m_c))``.

    Args:
        logits: [B, K, H, W] per-pixel class scores x (background included).
        masks: [B, K, H, W] their softmax over K.

    Returns:
        [B, K] image-level scores (``cls_1`` in ``SoftMaxAE.forward``).
    """
    x, m = logits.flatten(2), masks.flatten(2)
    return (x * m).sum(-1) / (1.0 + m.sum(-1))


def focal_mask_penalty(masks: Tensor, power: float = 3.0, lam: float = 0.01) -> Tensor:
    """Focal mask penalty ``(1 - mbar_c)^power * log(lam + mbar_c)``, mbar_c the mean mask.

    Added to the nGWP score: a class with a small mask gets a large negative score, so the
    multi-label loss pushes present classes to cover more pixels. ``FOCAL_P`` = 3 and
    ``FOCAL_LAMBDA`` = 0.01 (visinf/1-stage-wseg ``configs/voc_resnet38.yaml``; ``focal_loss``
    in ``models/stage_net.py``).

    Args:
        masks: [B, K, H, W] class masks (softmax over K).

    Returns:
        [B, K].
    """
    mbar = masks.flatten(2).mean(-1)
    return torch.pow(1 - mbar, power) * torch.log(lam + mbar)


def pseudo_masks(
    masks: Tensor,
    fg_ratio: float = 0.6,
    bg_ratio: float = 0.7,
    floor: float = 0.2,
) -> Tensor:
    """Binary pseudo ground truth from (refined) class masks.

    Per image and class, a pixel is claimed when its mask value exceeds
    ``max(floor, ratio * peak)`` (``peak`` the class's highest value in the image, ``ratio``
    0.7 for the background, index 0, and 0.6 for the others); pixels claimed by two or more
    classes are dropped. Reference: ``pseudo_gtmask`` in visinf/1-stage-wseg
    ``models/stage_net.py`` (cutoff_top 0.6, 0.7 for the background, cutoff_low 0.2).

    Args:
        masks: [B, K, H, W] masks in [0, 1] (absent classes already zeroed).

    Returns:
        [B, K, H, W] float {0, 1}; at most one class per pixel (none = ignored).
    """
    peak = masks.flatten(2).amax(-1)[..., None, None]
    ratio = torch.full_like(peak, fg_ratio)
    ratio[:, :1] = bg_ratio
    thr = (peak * ratio).clamp(min=floor)
    claimed = (masks > thr).to(masks.dtype)
    ambiguous = claimed.sum(1, keepdim=True) > 1
    return claimed.masked_fill(ambiguous, 0.0)


def balanced_mask_ce(
    logits: Tensor,
    pseudo: Tensor,
    required: Tensor,
    ignore_index: int = 255,
) -> tuple[Tensor, Tensor]:
    """Class-balanced cross-entropy on pseudo masks, per image.

    Pixel weight ``(N - N_c) / (1 + N)`` for a pixel of class c (N_c its pixels, N all claimed
    pixels of the image), so that small classes count as much as large ones; the loss of an
    image counts only when every ``required`` class has pixels in its pseudo mask.
    Reference: ``balanced_mask_loss_ce`` in visinf/1-stage-wseg ``models/stage_net.py`` (which
    requires background + every labelled class; ``required`` generalises it to data without a
    background class). Like the reference, the mean runs over all pixels, ignored ones as 0.

    Args:
        logits: [B, K, H, W] scores (resized to the pseudo masks' size if needed).
        pseudo: [B, K, H, W] {0, 1} pseudo masks (:func:`pseudo_masks`).
        required: [B, K] {0, 1} classes that must appear for the image to count.

    Returns:
        ``(loss [B], counted [B])``: per-image losses (0 where not counted) and the 0/1 flags.
    """
    if logits.shape[-2:] != pseudo.shape[-2:]:
        logits = F.interpolate(logits, pseudo.shape[-2:], mode='bilinear', align_corners=True)
    B, K = pseudo.shape[:2]
    target = pseudo.argmax(1)
    target[pseudo.sum(1) < 1] = ignore_index
    n_c = pseudo.flatten(2).sum(-1)
    n = n_c.sum(-1, keepdim=True)
    class_weight = (n - n_c) / (1 + n)
    pixel_weight = (pseudo * class_weight[..., None, None]).sum(1).view(B, -1)
    ce = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction='none')
    present = n_c > 0
    counted = ((required > 0) <= present).all(-1).to(ce.dtype)
    return counted * (pixel_weight * ce.view(B, -1)).mean(-1), counted


class CAMMaps(NamedTuple):
    """The working tensors of a CAM step, background first (see :class:`CAMLayout`)."""

    logits: Tensor  # [B, K, H, W] full-resolution scores x
    valid: Tensor  # [B, 1, H, W] 1 on image pixels, 0 on padding
    pooled: Tensor  # [B, K, h, w] x at 1/cam_stride (``logits`` when cam_stride is 1)
    pooled_valid: Tensor  # [B, 1, h, w]
    masks: Tensor  # [B, K, h, w] softmax(pooled) over K, 0 on padding


@dataclasses.dataclass(frozen=True)
class CAMLayout:
    """Which channels a single-stage CAM step works on, and at what resolution.

    The classification term (:class:`uda.methods.SingleStageCAM`) and the mask term
    (:class:`uda.methods.SingleStageCAMMask`) must read the same maps; both take these three
    settings from one config variable (``cam_maps`` of ``configs/_base_/methods/cam.py``)
    and build them here, so the maps are the same tensors in both terms.

    The background logit is constant. With ``background`` (a class id, VOC's 0) the segmentor
    produces it (its ``ConstantLogit`` insertion), so it is the background class at test time
    too. Without (data with no background class: CamVid, Cityscapes) a constant "no labelled
    class" logit ``bg_logit`` is appended that exists only in training (1, as the reference's
    ``torch.ones_like`` in visinf/1-stage-wseg ``models/stage_net.py`` ``SoftMaxAE.forward``).
    ``bg_logit=None`` drops the background altogether (street scenes, where every pixel has a
    class). Masks, pooling and PAMR run at 1/``cam_stride`` of the input (average-pooled
    logits; the reference's masks come from stride-4 features, which ``cam_stride=4`` mirrors
    for full-resolution decoders).
    """

    background: Optional[int] = None
    bg_logit: Optional[float] = 1.0
    cam_stride: int = 1

    @classmethod
    def of(
        cls, who: str, background: Optional[int], bg_logit: Optional[float], cam_stride: int
    ) -> CAMLayout:
        """The layout of term ``who``'s arguments, checked."""
        if int(cam_stride) < 1:
            raise ValueError(f'{who}(cam_stride={cam_stride}): use an integer >= 1.')
        return cls(
            None if background is None else int(background),
            None if bg_logit is None else float(bg_logit),
            int(cam_stride),
        )

    @property
    def has_bg(self) -> bool:
        """Channel 0 of the working tensors is a background (a constant logit)."""
        return self.background is not None or self.bg_logit is not None

    def check_segmentor(self, who: str, num_classes: int, constant_logit: Optional[tuple]) -> None:
        """With ``background``, the segmentor's constant logit must be that class."""
        if self.background is None:
            return
        ok = constant_logit is not None and constant_logit[0] == self.background
        if not 0 <= self.background < num_classes or not ok:
            raise ValueError(
                f'{who}(background={self.background}): the background logit must be '
                f'the constant of the segmentor; set segmentor.constant_logit=dict('
                f'index={self.background}, value=1.0) (a class id in 0..{num_classes - 1}), or '
                'background=None for data without a background class.'
            )

    def class_order(self, num_classes: int) -> tuple[list[int], list[int]]:
        """``(fg, ids)``: the labelled classes, and the class id of each channel of the
        background-first tensors (-1 for the appended training-only background)."""
        fg = [c for c in range(num_classes) if c != self.background]
        if not self.has_bg:
            return fg, fg
        return fg, [-1 if self.background is None else self.background] + fg

    def background_first(self, logits: Tensor) -> Tensor:
        """[B, C, H, W] logits -> [B, 1 + |fg|, H, W] with the (constant) background first."""
        fg, _ = self.class_order(logits.shape[1])
        if not self.has_bg:
            return logits
        if self.background is None:
            assert self.bg_logit is not None
            bg = torch.zeros_like(logits[:, :1]) + float(self.bg_logit)
        else:
            bg = logits[:, self.background : self.background + 1]
        return torch.cat([bg, logits[:, fg]], 1)

    def maps(self, logits: Tensor, valid: Tensor) -> CAMMaps:
        """The working tensors of ``logits`` [B, C, H, W]; ``valid`` [B, H, W] image pixels."""
        x_full = self.background_first(logits.float())
        valid_full = valid[:, None].to(x_full.dtype)
        x, valid_x = x_full, valid_full
        stride = int(self.cam_stride)
        if stride > 1:
            x = F.avg_pool2d(x_full, stride, ceil_mode=True)
            valid_x = (F.avg_pool2d(valid_full, stride, ceil_mode=True) > 0.5).to(x.dtype)
        masks = x.softmax(1) * valid_x  # padding takes no part in pooling
        return CAMMaps(x_full, valid_full, x, valid_x, masks)


__all__ = [
    'CAMLayout',
    'CAMMaps',
    'balanced_mask_ce',
    'focal_mask_penalty',
    'ngwp_scores',
    'pseudo_masks',
]
