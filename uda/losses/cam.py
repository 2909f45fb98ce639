"""Losses of single-stage CAM training from image-level labels.

Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020
(arXiv:2005.08104); reference code visinf/1-stage-wseg ``models/stage_net.py`` (commit d905fca).
Class index 0 of every tensor here is the background (the constant logit); 1.. the classes
that image labels name.
"""

from __future__ import annotations

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


__all__ = ['balanced_mask_ce', 'focal_mask_penalty', 'ngwp_scores', 'pseudo_masks']
