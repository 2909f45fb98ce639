"""Entropy of segmentation predictions: the ADVENT self-information map and MinEnt's loss.

Both are computed from logits with ``log_softmax`` (no ``log(p + eps)``), which is exact where
``p`` underflows and keeps bf16/fp16 autocast finite.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor


def weighted_self_information(logits: Tensor) -> Tensor:
    """ADVENT's map ``-p * log2(p) / log2(C)`` per class (arXiv:1811.12833, Eq. 7).

    Args:
        logits: [B, C, H, W] unnormalised scores.

    Returns:
        [B, C, H, W] non-negative map; its sum over C is the normalised pixel entropy in [0, 1].
    """
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp) / math.log(logits.shape[1])


def pixel_entropy(logits: Tensor) -> Tensor:
    """Normalised Shannon entropy per pixel, ``-sum_c p_c log p_c / log C``.

    Args:
        logits: [B, C, H, W] unnormalised scores.

    Returns:
        [B, H, W] values in [0, 1] (1 = uniform prediction).
    """
    return weighted_self_information(logits).sum(1)


def entropy_loss(logits: Tensor) -> Tensor:
    """MinEnt's objective: the mean normalised pixel entropy (ADVENT ``entropy_loss``).

    Args:
        logits: [B, C, H, W] unnormalised scores.

    Returns:
        Scalar in [0, 1].
    """
    return pixel_entropy(logits).mean()
