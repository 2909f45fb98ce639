"""Supervised cross-entropy on a labelled branch: the source-only baseline and the oracle."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from uda.losses import cross_entropy, ohem_cross_entropy
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS


@TERMS.register_module()
class SourceCE(Term):
    """Pixel cross-entropy of the student on a labelled branch.

    Args:
        weight: Loss weight.
        branch: Batch branch holding labelled images ([B, 3, H, W] + gt [B, H, W]).
        aux_weight: Weight of the same loss on the auxiliary head's logits (``loss_ce_aux``;
            0.1 in multi-level AdaptSegNet / ADVENT); 0 disables it.
        ohem_thresh: With a value, the main loss is UniMatch's OHEM cross-entropy
            (:func:`uda.losses.ohem_cross_entropy`; 0.7 on Cityscapes); None: plain CE.
        ohem_min_kept: OHEM's minimum number of kept pixels per batch (200000).
    """

    def __init__(
        self,
        weight: float = 1.0,
        branch: str = 'source',
        aux_weight: float = 0.0,
        ohem_thresh: Optional[float] = None,
        ohem_min_kept: int = 200000,
    ) -> None:
        super().__init__(weight)
        self.branch = branch
        self.aux_weight = float(aux_weight)
        self.ohem_thresh = None if ohem_thresh is None else float(ohem_thresh)
        self.ohem_min_kept = int(ohem_min_kept)
        self.needs_aux = self.aux_weight > 0

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        gt = ctx.labels(self.branch)
        # Shared with other terms that need the student's outputs on this branch.
        out = ctx.student(self.branch)
        if self.ohem_thresh is None:
            loss = cross_entropy(out['logits'], gt, ignore_index=ctx.ignore_index)
        else:
            loss = ohem_cross_entropy(
                out['logits'], gt, self.ohem_thresh, self.ohem_min_kept, ctx.ignore_index
            )
        losses = {'loss_ce': self.weight * loss}
        if self.aux_weight > 0:
            aux = cross_entropy(out['aux_logits'], gt, ignore_index=ctx.ignore_index)
            losses['loss_ce_aux'] = self.aux_weight * aux
        return losses
