"""Pixel-wise cross-entropy with ignore pixels, class weights and per-pixel weights."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    class_weight: Optional[Tensor] = None,
    pixel_weight: Optional[Tensor] = None,
    ignore_index: int = 255,
    avg_non_ignore: bool = True,
) -> Tensor:
    """Mean pixel cross-entropy.

    Args:
        logits: [B, C, H, W] unnormalised scores.
        target: [B, H, W] class ids, ``ignore_index`` where there is no label.
        class_weight: Optional [C] weights per class.
        pixel_weight: Optional [B, H, W] weights per pixel (e.g. teacher confidence).
        ignore_index: Label of pixels that contribute nothing.
        avg_non_ignore: Average over labelled pixels (True) or over all pixels (False; the
            convention of self-training losses whose weight already encodes reliability).

    Returns:
        Scalar loss; 0 (with gradient) when no pixel is labelled.
    """
    # fp32 under autocast: the log-softmax of low-precision logits loses the small classes.
    loss = F.cross_entropy(
        logits.float(), target, weight=class_weight, ignore_index=ignore_index, reduction='none'
    )
    if pixel_weight is not None:
        loss = loss * pixel_weight
    if not avg_non_ignore:
        return loss.mean()
    valid = target != ignore_index
    if class_weight is not None:
        # Normalise by the summed class weights of labelled pixels, as F.cross_entropy's 'mean'.
        denom = class_weight[target.clamp(max=logits.shape[1] - 1)][valid].sum()
    else:
        denom = valid.sum()
    return loss.sum() / denom.clamp(min=1e-6)


def ohem_cross_entropy(
    logits: Tensor,
    target: Tensor,
    thresh: float = 0.7,
    min_kept: int = 200000,
    ignore_index: int = 255,
) -> Tensor:
    """Online hard example mining cross-entropy, UniMatch's labelled loss on Cityscapes
    (LiheYoung/UniMatch util/ohem.py ``ProbOhemCrossEntropy2d``; configs/cityscapes.yaml
    thresh 0.7, min_kept 200000).

    A labelled pixel is kept when the softmax probability of its true class is at most
    ``max(thresh, p_k)``, ``p_k`` the ``min_kept``-th smallest such probability of the batch, so
    at least ``min_kept`` of the hardest pixels stay; with fewer than ``min_kept`` labelled
    pixels every one is kept. The loss is the mean cross-entropy over the kept pixels.

    Args:
        logits: [B, C, H, W] scores.
        target: [B, H, W] class ids, ``ignore_index`` where there is no label.
        thresh: Probability below which a pixel is always kept (0.7).
        min_kept: Pixels kept at least (200000 for 2 images of 801x801).
        ignore_index: Label of pixels that contribute nothing.
    """
    valid = target != ignore_index
    num_valid = int(valid.sum())
    kept = valid
    if 0 < min_kept <= num_valid:
        with torch.no_grad():
            prob = logits.detach().float().softmax(1)
            true = prob.gather(1, torch.where(valid, target, 0)[:, None])[:, 0]
            true = true.masked_fill(~valid, 1.0)  # as the reference: ignore pixels rank last
            kth = true.flatten().kthvalue(min(true.numel(), min_kept)).values
            threshold = torch.maximum(kth, torch.tensor(float(thresh), device=kth.device))
            kept = valid & (true <= threshold)
    return cross_entropy(logits, torch.where(kept, target, ignore_index), ignore_index=ignore_index)
