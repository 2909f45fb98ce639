"""Losses of predictions against pseudo-labels or against other predictions, shared by terms.

SAC's focal, confidence-weighted cross-entropy (visinf/da-sac ``models/sac.py``), the
confidence-masked cross-entropy of FixMatch / UniMatch (LiheYoung/UniMatch ``unimatch.py``) and
the per-pixel KL divergence of VAT (takerum/vat_tf ``vat.py``).
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from uda.losses.cross_entropy import cross_entropy


def focal_class_weights(prior: Tensor, power: float = 3.0) -> Tensor:
    """Class weights ``(1 - prior)^power``: frequent classes weigh less."""
    return (1.0 - prior.clamp(0, 1)) ** power


def sac_loss(
    logits: Tensor,
    labels: Tensor,
    confidence: Tensor,
    prior: Tensor,
    focal_power: float = 3.0,
    ignore_index: int = 255,
    confidence_form: str = 'pixel',
) -> Tensor:
    """SAC's self-training loss: ``mean(conf * (1 - prior[y])^p * CE(logits, y))`` over all
    pixels, ignored pixels contributing 0 (the reference's ``_focal_ce_conf``).

    ``confidence_form='pixel'`` weights each pixel by its own teacher confidence (the paper).
    ``'batch_mean'`` is the released code's arithmetic: ``loss_ce`` [B, H, W] times
    ``teacher_conf`` [B, 1, H, W] broadcasts to [B, B, H, W], so each pixel is weighted by the
    confidence at that position averaged over the batch of views (visinf/da-sac
    models/sac.py:148, 159, 357-360).

    Args:
        logits: [B, C, H, W] student scores.
        labels: [B, H, W] pseudo-labels (``ignore_index`` where unreliable).
        confidence: [B, H, W] teacher confidence per pixel.
        prior: [C] running class prior.
        confidence_form: ``'pixel'`` or ``'batch_mean'`` (see above).
    """
    if confidence_form == 'batch_mean':
        confidence = confidence.mean(0, keepdim=True).expand_as(confidence)
    elif confidence_form != 'pixel':
        raise ValueError(
            f"sac_loss(confidence_form={confidence_form!r}): use 'pixel' (the paper) or "
            "'batch_mean' (the released code's broadcast)."
        )
    return cross_entropy(
        logits.float(),
        labels,
        class_weight=focal_class_weights(prior, focal_power),
        pixel_weight=confidence,
        ignore_index=ignore_index,
        avg_non_ignore=False,
    )


def masked_consistency_loss(
    logits: Tensor, labels: Tensor, weight: Tensor, valid: Tensor, ignore_index: int = 255
) -> Tensor:
    """``sum(weight * CE(logits, labels)) / #valid`` (UniMatch ``unimatch.py``).

    Args:
        logits: [B, C, H, W] student scores on the strong view.
        labels: [B, H, W] targets, ``ignore_index`` where unreliable (contribute 0).
        weight: [B, H, W] per-pixel weight (the confidence mask).
        valid: [B, H, W] bool, pixels inside the image (not padding): the denominator.

    Returns:
        Scalar loss; 0 (with gradient) when no pixel is confident.
    """
    ce = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction='none')
    return (ce * weight).sum() / valid.sum().clamp(min=1)


def pixel_kl(p_logits: Tensor, q_logits: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Mean over (valid) pixels of ``KL(softmax(p) || softmax(q))`` summed over classes.

    Args:
        p_logits: [B, C, H, W] logits of the fixed (clean) prediction.
        q_logits: [B, C, H, W] logits of the perturbed prediction.
        valid: Optional [B, H, W] bool; pixels outside (padding) do not count.
    """
    logp = F.log_softmax(p_logits.float(), 1)
    logq = F.log_softmax(q_logits.float(), 1)
    kl = (logp.exp() * (logp - logq)).sum(1)
    if valid is None:
        return kl.mean()
    return (kl * valid).sum() / valid.sum().clamp(min=1)


__all__ = ['focal_class_weights', 'masked_consistency_loss', 'pixel_kl', 'sac_loss']
