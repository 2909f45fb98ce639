"""MinEnt: minimise the entropy of target predictions (ADVENT, arXiv:1811.12833)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from uda.losses import entropy_loss
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS
from uda.visualization import entropy_panel


@TERMS.register_module()
class MinEnt(Term):
    """Mean normalised pixel entropy of the student's target predictions.

    Confident target predictions pull decision boundaries away from target data; ADVENT
    reports it alone (MinEnt) and with AdvEnt (AdvEnt+MinEnt).

    Args:
        weight: Weight of the main-level entropy (1e-3 in ADVENT).
        aux_weight: Weight on the auxiliary head's logits (2e-4); 0 disables it.
        branch: Unlabelled target branch ([B, 3, H, W]).
    """

    def __init__(
        self, weight: float = 1e-3, aux_weight: float = 2e-4, branch: str = 'target'
    ) -> None:
        super().__init__(weight)
        self.aux_weight = float(aux_weight)
        self.needs_aux = self.aux_weight > 0
        self.branch = branch
        self._vis: Optional[Tensor] = None

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        out = ctx.student(self.branch)
        losses = {'loss_ent': self.weight * entropy_loss(out['logits'])}
        if self.aux_weight > 0:
            losses['loss_ent_aux'] = self.aux_weight * entropy_loss(out['aux_logits'])
        self._vis = out['logits'][:1].detach()
        return losses

    def vis_panels(self) -> dict[str, Tensor]:
        return (
            {}
            if self._vis is None
            else {f'target_entropy_{self.term_name}': entropy_panel(self._vis)}
        )
