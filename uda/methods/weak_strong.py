"""Weak/strong consistency (FixMatch-style; Sohn et al., NeurIPS 2020, arXiv:2001.07685).

Confident predictions on a weak view of an unlabelled image are the targets of the student on a
strong view of the same image. The loss follows UniMatch (LiheYoung/UniMatch ``unimatch.py``,
``criterion_u`` with ``reduction='none'``): pixel cross-entropy masked by the confidence mask
and summed, divided by the number of non-padding pixels (not by the confident ones), so a batch
with few confident pixels gives a small loss rather than a large one on a few pixels.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from uda.augment.photometric import PhotometricAugment, build_photometric
from uda.losses import masked_consistency_loss
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS

# UniMatch's strong view (uda.augment.photometric.UNIMATCH_STRONG).
UNIMATCH_STRONG_VIEW = dict(preset='unimatch_strong')


@TERMS.register_module()
class WeakStrongConsistency(Term):
    """Cross-entropy of the student on a strong view against confident weak-view labels.

    Targets are the named labeller's pseudo-labels of ``weak_branch``
    (:class:`uda.methods.ConfidenceLabeller`: arg-max where the max softmax >= 0.95, teacher or
    student in eval mode), shared with other terms of the step. The strong view is either

    * ``strong_branch``: a batch branch holding a photometric view of the same images from the
      data pipeline (``MultiBranchDataset`` views: ``'target.weak'`` / ``'target.strong'``); its
      geometry must equal the weak view's, or
    * made on the device (``strong_branch=None``): per-image kornia colour jitter, greyscale and
      blur of the weak images with UniMatch's strong-view parameters
      (the ``photometric`` preset ``'unimatch_strong'``; LiheYoung/UniMatch ``dataset/semi.py``).

    Usable on the target branch in UDA and on the unlabelled branch of semi-supervised training.
    BatchNorm: the strong forward of ``strong_branch`` goes through
    :meth:`StepContext.student` (running statistics updated when the adapter's ``bn_policy``
    follows that branch); the on-device strong forward is a plain
    :meth:`StepContext.student_forward` (updates them only under ``bn_policy='train'``).

    Returns ``loss`` and ``mask_ratio`` (share of non-padding pixels above the threshold;
    logged, not summed).

    Args:
        weight: Loss weight (UniMatch: 0.5 for the two strong views together against 1 for the
            labelled loss, i.e. 0.25 per view before its overall /2; FixMatch lambda_u = 1).
        labeller: Name of the adapter's labeller giving [B, H, W] labels of the weak view
            (a ConfidenceLabeller with threshold 0.95: FixMatch; UniMatch Pascal).
        weak_branch: Branch of the weak view [B, 3, H, W] (``'target'``, ``'unlabeled.weak'``).
        strong_branch: Branch of the strong view from the data pipeline; None = on the device.
        photometric: The on-device strong view, one config dict
            (:func:`uda.augment.photometric.build_photometric`):
            ``dict(preset='unimatch_strong')`` (UniMatch ``dataset/semi.py``: ColorJitter(0.5,
            0.5, 0.5, 0.25) p 0.8, greyscale p 0.2, blur sigma 0.1-2.0 p 0.5, 13 px kernel);
            keys beside ``preset`` override it.
    """

    labeller_args = {'labeller': dict(type='ConfidenceLabeller', threshold=0.95)}
    console_keys = ('mask_ratio',)

    def __init__(
        self,
        weight: float = 1.0,
        labeller: str = 'conf',
        weak_branch: str = 'target',
        strong_branch: Optional[str] = None,
        photometric: dict = UNIMATCH_STRONG_VIEW,
    ) -> None:
        super().__init__(weight)
        self.labeller = labeller
        self.weak_branch, self.strong_branch = weak_branch, strong_branch
        self.photometric: Optional[PhotometricAugment] = None
        if strong_branch is None:
            self.photometric = build_photometric(
                photometric, 'WeakStrongConsistency(photometric=...)'
            )

    @torch.no_grad()
    def strong_view(self, ctx: StepContext, x: Tensor, valid: Tensor) -> Tensor:
        """On-device strong view of normalised ``x`` [B, 3, H, W]; padding left as it is."""
        return ctx.photometric_view(x, self.photometric, valid, outside='input')

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        pl = ctx.pseudo_labels(self.weak_branch, self.labeller)
        x = ctx.inputs(self.weak_branch)
        expected = (x.shape[0], *x.shape[-2:])
        if tuple(pl.labels.shape) != expected:
            raise ValueError(
                f"WeakStrongConsistency: labeller '{self.labeller}' gives labels "
                f"{tuple(pl.labels.shape)} but branch '{self.weak_branch}' is {expected}; "
                'name a per-image labeller (ConfidenceLabeller).'
            )
        valid = pl.valid
        if valid is None:
            valid = ctx.valid_pixels(self.weak_branch)
        if self.strong_branch is None:
            logits = ctx.student_forward(self.strong_view(ctx, x, valid))['logits']
        else:
            xs = ctx.inputs(self.strong_branch)
            if xs.shape != x.shape:
                raise ValueError(
                    f"WeakStrongConsistency: strong branch '{self.strong_branch}' is "
                    f"{tuple(xs.shape)} but weak branch '{self.weak_branch}' is "
                    f'{tuple(x.shape)}; the strong view must keep the geometry (put crops '
                    'and flips in the shared dataset pipeline, only photometric '
                    'transforms in the views).'
                )
            logits = ctx.student(self.strong_branch)['logits']
        loss = masked_consistency_loss(logits, pl.labels, pl.weight, valid, ctx.ignore_index)
        kept = (pl.weight * valid).sum() / valid.sum().clamp(min=1)
        return {
            'loss': self.weight * loss,
            'mask_ratio': kept.detach(),
        }
