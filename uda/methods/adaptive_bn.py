"""Adaptive BatchNorm (ABN): BN statistics follow the target domain.

The honest baseline of domain adaptation (Li et al., "Revisiting Batch Normalization for
Practical Domain Adaptation", arXiv:1603.04779; the ABN baseline of SAC, CVPR 2021): target
batches pass through the student in train mode without gradient, so the BatchNorm running
statistics used at test time are those of target images.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from uda.methods.base import Adapter, Term
from uda.registry import TERMS


def bn_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers of ``module`` that track running statistics."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats and m.running_mean is not None]


@TERMS.register_module()
class AdaptiveBN(Term):
    """Forward target batches in train mode, without gradient, to adapt BN statistics.

    Source forwards of other terms also update the running statistics; this term undoes that:
    before its own target forward it restores the statistics it left after its previous call,
    so the running mean/var are an exponential average over target batches only. It runs after
    all other terms (``order``), so the statistics seen at validation are target statistics.

    Args:
        branch: Unlabelled target branch ([B, 3, H, W]).
        target_only_stats: Restore statistics between calls as described (True), or let source
            and target forwards mix in the running averages (False).
        until_self_training: Stop once the adapter's teacher is initialised, so ABN is the
            warm-up phase of a self-training run (SAC freezes BN statistics from then on).
    """

    order = 100

    def __init__(self, branch: str = 'target', target_only_stats: bool = True,
                 until_self_training: bool = False) -> None:
        super().__init__(weight=0.0)
        self.branch = branch
        self.target_only_stats = target_only_stats
        self.until_self_training = until_self_training
        self._saved: Optional[list[tuple[Tensor, Tensor, Tensor]]] = None

    def forward(self, adapter: Adapter, inputs: dict[str, Tensor],
                data_samples: dict[str, list[dict]]) -> dict[str, Tensor]:
        if self.branch not in inputs:
            raise KeyError(f"AdaptiveBN reads branch '{self.branch}' but the batch has "
                           f'{sorted(inputs)}.')
        layers = bn_layers(adapter.student)
        if not layers or (self.until_self_training and adapter.self_training):
            return {}
        # Swap in fresh buffer tensors instead of writing in place: the source forward of this
        # step saved the current ones for its backward pass.
        restore = self.target_only_stats and self._saved is not None
        for i, bn in enumerate(layers):
            mean, var, n = self._saved[i] if restore else (bn.running_mean, bn.running_var,
                                                          bn.num_batches_tracked)
            bn.running_mean = mean.clone()
            bn.running_var = var.clone()
            bn.num_batches_tracked = n.clone()
        was_training = adapter.student.training
        adapter.student.train()
        with torch.no_grad():
            adapter.student(inputs[self.branch])
        adapter.student.train(was_training)
        if self.target_only_stats:
            self._saved = [(bn.running_mean.clone(), bn.running_var.clone(),
                            bn.num_batches_tracked.clone()) for bn in layers]
        shift = torch.stack([bn.running_mean.abs().mean() for bn in layers]).mean()
        return {'tgt.bn_mean_abs': shift.detach()}
