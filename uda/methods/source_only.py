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
    """

    def __init__(self, weight: float = 1.0, branch: str = 'source', prefix: str = 'src.') -> None:
        super().__init__(weight)
        self.branch = branch
        self.prefix = prefix

    def forward(self, adapter: Adapter, inputs: dict[str, Tensor],
                data_samples: dict[str, list[dict]]) -> dict[str, Tensor]:
        if self.branch not in inputs:
            raise KeyError(f"SourceCE reads branch '{self.branch}' but the batch has "
                           f'{sorted(inputs)}; set SourceCE(branch=...) or the dataset branches.')
        x = inputs[self.branch]
        gt = stack_gt(data_samples[self.branch], x.device)
        logits = adapter.student(x)
        loss = cross_entropy(logits, gt, ignore_index=adapter.ignore_index)
        return {f'{self.prefix}loss_ce': self.weight * loss}
