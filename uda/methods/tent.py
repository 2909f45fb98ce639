"""TENT's objective: the mean softmax entropy of the test predictions (Wang et al., ICLR 2021).

arXiv:2006.10726, reference code DequanWang/tent ``tent.py``. The trainable parameters (the
normalisation layers' affine ones) are the segmentor's ``train_only`` option and the test-batch
normalisation is the test-time loop's (:mod:`uda.engine.test_time`); this term is the loss.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS


def softmax_entropy(logits: Tensor) -> Tensor:
    """Per-pixel entropy in nats, ``-sum_c p_c log p_c`` over dim 1 ([B, C, H, W] -> [B, H, W]);
    DequanWang/tent ``tent.py:42-45`` ``softmax_entropy`` (from log-softmax: finite where p
    underflows)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


@TERMS.register_module()
class TentEntropy(Term):
    """``weight * mean`` softmax entropy (nats) of the student's predictions on ``branch``.

    Unlike :class:`uda.methods.MinEnt` (ADVENT: divided by ``ln C``), the entropy is not
    normalised, as TENT's loss (``tent.py:57``, mean over the batch; here over the batch and its
    pixels), so a learning rate from the TENT references means the same step for any class count.

    Args:
        weight: Loss weight.
        branch: Unlabelled target branch ([B, 3, H, W]).
    """

    def __init__(self, weight: float = 1.0, branch: str = 'target') -> None:
        super().__init__(weight)
        self.branch = branch

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        logits = ctx.student(self.branch)['logits']
        return {'loss': self.weight * softmax_entropy(logits).mean()}


__all__ = ['TentEntropy', 'softmax_entropy']
