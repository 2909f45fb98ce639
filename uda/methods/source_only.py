"""Supervised cross-entropy on a labelled branch: the source-only baseline and the oracle."""
from __future__ import annotations

from torch import Tensor

from uda.losses import cross_entropy
from uda.methods.base import Adapter, Term, stack_gt
from uda.registry import TERMS


@TERMS.register_module()
class SourceCE(Term):
    """Pixel cross-entropy of the student on a labelled branch.

    Args:
        weight: Loss weight.
        branch: Batch branch holding labelled images ([B, 3, H, W] + gt [B, H, W]).
        prefix: Log-key prefix; the loss is logged as ``<prefix>loss_ce``.
        aux_weight: Weight of the same loss on the auxiliary head's logits (``<prefix>
            loss_ce_aux``; 0.1 in multi-level AdaptSegNet / ADVENT); 0 disables it.
    """

    def __init__(self, weight: float = 1.0, branch: str = 'source', prefix: str = 'src.',
                 aux_weight: float = 0.0) -> None:
        super().__init__(weight)
        self.branch = branch
        self.prefix = prefix
        self.aux_weight = float(aux_weight)
        self.needs_aux = self.aux_weight > 0

    def forward(self, adapter: Adapter, inputs: dict[str, Tensor],
                data_samples: dict[str, list[dict]]) -> dict[str, Tensor]:
        if self.branch not in inputs:
            raise KeyError(f"SourceCE reads branch '{self.branch}' but the batch has "
                           f'{sorted(inputs)}; set SourceCE(branch=...) or the dataset branches.')
        x = inputs[self.branch]
        gt = stack_gt(data_samples[self.branch], x.device)
        # Shared with other terms that need the student's outputs on this branch.
        out = adapter.student_forward(self.branch, x)
        loss = cross_entropy(out['logits'], gt, ignore_index=adapter.ignore_index)
        losses = {f'{self.prefix}loss_ce': self.weight * loss}
        if self.aux_weight > 0:
            aux = cross_entropy(out['aux_logits'], gt, ignore_index=adapter.ignore_index)
            losses[f'{self.prefix}loss_ce_aux'] = self.aux_weight * aux
        return losses
