"""Adversarial training pieces: GAN losses on discriminator outputs and gradient reversal."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

GAN_LOSSES = ('bce', 'lsgan')


def gan_loss(pred: Tensor, label: float, kind: str = 'bce') -> Tensor:
    """Loss of raw discriminator outputs against a constant domain label.

    Args:
        pred: [B, 1, h, w] raw discriminator outputs (logits for 'bce').
        label: Domain label every output should have (ADVENT: source 0, target 1).
        kind: 'bce' (binary cross-entropy with logits, AdaptSegNet/ADVENT) or 'lsgan'
            (least-squares GAN: mean squared error of the raw output, Mao et al. 2017).

    Returns:
        Scalar mean over outputs, computed in float32 (stable under autocast).
    """
    target = torch.full_like(pred, float(label), dtype=torch.float32)
    if kind == 'bce':
        return F.binary_cross_entropy_with_logits(pred.float(), target)
    if kind == 'lsgan':
        return F.mse_loss(pred.float(), target)
    raise ValueError(f'gan_loss: unknown kind {kind!r}; use one of {GAN_LOSSES}.')


def domain_accuracy(pred: Tensor, label: float, kind: str = 'bce') -> Tensor:
    """Share of discriminator outputs on the side of ``label`` (a diagnostic, no gradient).

    For 'bce' the decision threshold is logit 0 (probability 0.5); for 'lsgan' it is 0.5.
    """
    threshold = 0.0 if kind == 'bce' else 0.5
    says_target = pred.detach().float() > threshold
    return (says_target if label >= 0.5 else ~says_target).float().mean()


class _GradReverse(torch.autograd.Function):
    """Identity forward, gradient multiplied by ``-coeff`` backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: Tensor, coeff: float = 1.0) -> Tensor:
    """Gradient-reversal layer: returns ``x``; the gradient flowing back is ``-coeff * grad``.

    A loss that the discriminator minimises, taken through this layer, is *maximised* with
    respect to the features: DANN's one-line minimax (arXiv:1409.7495).
    """
    return _GradReverse.apply(x, float(coeff))
