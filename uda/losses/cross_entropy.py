"""Pixel-wise cross-entropy with ignore pixels, class weights and per-pixel weights."""

from __future__ import annotations

from typing import Optional

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
