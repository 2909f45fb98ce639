"""BN-adapt's term: a forward of the target batch that trains nothing.

BN-adapt (Schneider et al., NeurIPS 2020, arXiv:2006.16971; Nado et al., arXiv:2006.10963)
changes no weight: the normalisation layers use the test batch's statistics, mixed with the
source ones (:func:`uda.engine.test_time.prior_batch_norm`). As a method of terms it is this
term alone: one student forward of the batch under that normalisation, whose outputs
:class:`uda.engine.TestTimeAdapter` reuses as the prediction (no second forward), with the
prediction's entropy logged.
"""

from __future__ import annotations

import torch
from torch import Tensor

from uda.losses.entropy import pixel_entropy
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS


@TERMS.register_module()
class PredictionStatistics(Term):
    """Student forward of ``branch`` without gradient; logs the mean normalised pixel entropy
    (``entropy``) and the entropy of the predicted class histogram (``class_entropy``, nats).
    Returns no loss.

    Args:
        branch: Unlabelled target branch ([B, 3, H, W]).
    """

    def __init__(self, branch: str = 'target') -> None:
        super().__init__(1.0)
        self.branch = branch

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        with torch.no_grad():
            logits = ctx.student(self.branch)['logits']
            hist = torch.bincount(logits.argmax(1).flatten(), minlength=logits.shape[1]).float()
            p = hist / hist.sum()
            p = p[p > 0]
            return {
                'entropy': pixel_entropy(logits).mean(),
                'class_entropy': -(p * p.log()).sum(),
            }


__all__ = ['PredictionStatistics']
