"""CoTTA: continual test-time adaptation (Wang et al., CVPR 2022, arXiv:2203.13591).

A momentum teacher (the adapter's :class:`uda.models.MomentumTeacher`, 0.999 per step) labels
each target batch; where the frozen source model (the *anchor*) is unsure, the label is the
arg-max of the teacher's softmax averaged over scaled and flipped copies of the image, else the
teacher's plain arg-max. The student is trained with cross-entropy to these labels on the plain
image, and after each step a random fraction of its weights returns to the source values
(``TestTimeAdapter(restore_prob=0.01)``). The segmentation form follows the Cityscapes->ACDC
code (Anonymous-012/SVDP ``mmseg/apis/test.py:241-290``: per-pixel trigger on the anchor's
confidence of the unscaled view, 0.69; 7 scales x flip; hard labels); the classification code's
soft-target loss and batch-mean trigger are in qinenergy/cotta ``cifar/cotta.py:98-132``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from uda.methods.context import PseudoLabels, StepContext
from uda.methods.term import Labeller, Term
from uda.registry import LABELLERS, TERMS

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter


@LABELLERS.register_module()
class CoTTALabeller(Labeller):
    """CoTTA's anchor-triggered, augmentation-averaged teacher labels.

    Per pixel: if the anchor's (source model's) max softmax on the image is above
    ``confidence``, the label is the teacher's arg-max on the image; otherwise the arg-max of the
    teacher's softmax averaged over ``scales`` x (flip) (:func:`uda.evaluation.inference.
    aug_inference`). The averaged pass runs only when some pixel is unsure. The anchor is a
    frozen copy of the student taken when the stream starts (``start_stream``, called by
    :class:`uda.engine.TestTimeAdapter`) or, in offline training, at the first call (the
    ``load_from`` weights); it is not part of the state dict (it never changes).

    Returns :class:`PseudoLabels` with ``labels`` [B, H, W] (ignore on padding), ``weight`` the
    non-padding mask, ``probs`` the teacher's plain probabilities, ``valid``, and as diagnostics
    in ``extras``: ``anchor_conf`` [B, H, W], ``unsure`` [B, H, W] bool.

    Args:
        confidence: Anchor confidence above which the plain teacher label is kept (0.69 in the
            ACDC code; "0.74 was the 5% quantile for cityscapes").
        scales: Input scales of the averaged teacher passes (0.5-2.0 in the ACDC code).
        flip: Also average horizontally flipped passes (True: 14 views).
        source: 'teacher' (CoTTA) or 'student'.
    """

    def __init__(
        self,
        confidence: float = 0.69,
        scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
        flip: bool = True,
        source: str = 'teacher',
    ) -> None:
        super().__init__(source)
        if not 0.0 <= confidence <= 1.0 or not scales:
            raise ValueError(
                f'CoTTALabeller(confidence={confidence}, scales={scales}): confidence in [0, 1] '
                'and at least one scale.'
            )
        self.confidence = float(confidence)
        self.scales, self.flip = tuple(float(s) for s in scales), bool(flip)

    @property
    def anchor(self) -> Optional[nn.Module]:
        return self.__dict__.get('_anchor')

    def start_stream(self, adapter: Adapter) -> None:
        """Freeze a copy of the student (the source model) as the anchor."""
        self._freeze_anchor(adapter.student)

    def _freeze_anchor(self, student: nn.Module) -> None:
        anchor = copy.deepcopy(student).eval()
        for p in anchor.parameters():
            p.requires_grad_(False)
        # Outside the module tree: not saved, not moved by the EMA, not trained.
        self.__dict__['_anchor'] = anchor

    @torch.no_grad()
    def forward(self, ctx: StepContext, branch: str) -> PseudoLabels:
        if self.anchor is None:
            self._freeze_anchor(ctx.network('student'))
        anchor = self.anchor
        assert anchor is not None
        x = ctx.inputs(branch)
        anchor_conf = anchor(x).float().softmax(1).max(1).values
        probs = self.predict(ctx, x)
        labels = probs.argmax(1)
        unsure = anchor_conf <= self.confidence
        if bool(unsure.any()):
            which = self.teacher_key or 'student'
            averaged = ctx.augmented_probs(which, x, self.scales, self.flip)
            labels = torch.where(unsure, averaged.argmax(1), labels)
        valid = ctx.valid_pixels(branch)
        labels = torch.where(valid, labels, torch.full_like(labels, ctx.ignore_index))
        return PseudoLabels(
            labels,
            valid.float(),
            probs=probs,
            valid=valid,
            extras=dict(anchor_conf=anchor_conf, unsure=unsure & valid),
        )


@TERMS.register_module()
class CoTTASelfTraining(Term):
    """Cross-entropy of the student on the target image to :class:`CoTTALabeller`'s labels.

    ``weight * mean CE`` over the labelled (non-ignored) pixels, as mmseg's decode loss in the
    ACDC code (the student trains on the unscaled view with the hard label). Logs
    ``unsure_ratio`` (share of pixels labelled by the averaged teacher). Starts with the
    teacher when its labeller reads it.

    Args:
        weight: Loss weight.
        branch: Unlabelled target branch ([B, 3, H, W]).
        labeller: Name of the adapter's :class:`CoTTALabeller`.
    """

    labeller_args = {'labeller': dict(type='CoTTALabeller')}
    console_keys = ('unsure_ratio',)

    def __init__(
        self, weight: float = 1.0, branch: str = 'target', labeller: str = 'cotta'
    ) -> None:
        super().__init__(weight)
        self.branch, self.labeller = branch, labeller

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        pl = ctx.pseudo_labels(self.branch, self.labeller)
        if 'unsure' not in pl.extras:
            raise TypeError(
                f"CoTTASelfTraining needs a CoTTALabeller; labeller '{self.labeller}' is not one."
            )
        logits = ctx.student(self.branch)['logits']
        loss = F.cross_entropy(logits.float(), pl.labels, ignore_index=ctx.ignore_index)
        if not bool((pl.labels != ctx.ignore_index).any()):
            loss = logits.sum() * 0.0  # no labelled pixel: keep the graph, add nothing
        valid = pl.weight.sum().clamp(min=1)
        return {
            'loss': self.weight * loss,
            'unsure_ratio': (pl.extras['unsure'].float().sum() / valid).detach(),
        }


__all__ = ['CoTTALabeller', 'CoTTASelfTraining']
