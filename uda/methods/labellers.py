"""Generic pseudo-labellers shared by terms: a confidence threshold and DACS's quality weight.

SAC's multi-view labeller lives with its term in :mod:`uda.methods.sac`. A labeller runs at
most once per step and branch (:meth:`uda.methods.StepContext.pseudo_labels`), however many
terms name it: ClassMix and masked consistency read one set of teacher labels, as MIC consumes
DACS's.
"""

from __future__ import annotations

import torch

from uda.methods.context import PseudoLabels, StepContext
from uda.methods.term import Labeller
from uda.registry import LABELLERS


@LABELLERS.register_module()
class ConfidenceLabeller(Labeller):
    """Arg-max labels kept where the confidence reaches ``threshold`` (FixMatch, UniMatch).

    ``labels`` are the arg-max class where ``max softmax >= threshold`` and inside the image,
    ignore elsewhere; ``weight`` is that mask as float; ``valid`` the non-padding pixels
    (UniMatch divides the masked loss by them: LiheYoung/UniMatch ``unimatch.py``);
    ``extras['conf']`` the confidence [B, H, W].

    Args:
        threshold: Confidence threshold (0.95 in FixMatch / UniMatch on Pascal).
        source: 'teacher' (mean teacher) or 'student' (UniMatch: the model itself).
    """

    def __init__(self, threshold: float = 0.95, source: str = 'teacher') -> None:
        super().__init__(source)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f'ConfidenceLabeller(threshold={threshold}): use a value in [0, 1].')
        self.threshold = float(threshold)

    @torch.no_grad()
    def forward(self, ctx: StepContext, branch: str) -> PseudoLabels:
        probs = self.predict_branch(ctx, branch)
        conf, labels = probs.max(1)
        valid = ctx.valid_pixels(branch)
        keep = valid & (conf >= self.threshold)
        labels = torch.where(keep, labels, torch.full_like(labels, ctx.ignore_index))
        return PseudoLabels(labels, keep.float(), probs=probs, valid=valid, extras=dict(conf=conf))


@LABELLERS.register_module()
class QualityLabeller(Labeller):
    """DACS pseudo-labels: arg-max everywhere, weighted by their quality.

    With ``quality='batch'`` (the DACS code: vikolss/DACS ``trainUDA.py``; lhoyer/MIC
    seg/mmseg/models/uda/dacs.py:264-272) ``weight`` is one number for the whole batch: the
    share of the batch's (non-padding) pixels whose confidence is at least ``threshold``. With
    ``quality='image'`` it is that share per image (an image of confident pixels is not held
    back by an uncertain neighbour in the batch). Either is broadcast to [B, H, W]; rows within
    ``ignore_top`` / ``ignore_bottom`` of the image border get weight 0 (DAFormer's pseudo-label
    margins: 15 / 120 rows on Cityscapes, for rectification artefacts and the ego car; the
    quality still counts their pixels, as the reference: dacs.py:274-286).

    Args:
        threshold: Confidence threshold of the quality (0.968).
        ignore_top: Top rows with weight 0.
        ignore_bottom: Bottom rows with weight 0.
        source: 'teacher' (DACS) or 'student'.
        quality: ``'batch'`` (DACS / DAFormer / MIC code) or ``'image'``.
    """

    QUALITIES = ('batch', 'image')

    def __init__(
        self,
        threshold: float = 0.968,
        ignore_top: int = 0,
        ignore_bottom: int = 0,
        source: str = 'teacher',
        quality: str = 'batch',
    ) -> None:
        super().__init__(source)
        if quality not in self.QUALITIES:
            raise ValueError(
                f"QualityLabeller(quality={quality!r}): use 'batch' (one weight for the batch, "
                "as the DACS code) or 'image' (one weight per image)."
            )
        self.threshold = float(threshold)
        self.ignore_top, self.ignore_bottom = int(ignore_top), int(ignore_bottom)
        self.quality = quality

    @torch.no_grad()
    def forward(self, ctx: StepContext, branch: str) -> PseudoLabels:
        probs = self.predict_branch(ctx, branch)
        conf, labels = probs.max(1)
        valid = ctx.valid_pixels(branch)
        good = ((conf >= self.threshold) & valid).flatten(1).sum(1).float()
        total = valid.flatten(1).sum(1).float()
        if self.quality == 'batch':
            good, total = good.sum().expand_as(good), total.sum().expand_as(total)
        quality = good / total.clamp(min=1)  # [B]
        weight = quality[:, None, None] * valid.float()
        for i, s in enumerate(ctx.samples(branch)):
            h = int(tuple(s.get('img_shape', probs.shape[-2:]))[0])
            if self.ignore_top:
                weight[i, : self.ignore_top] = 0
            if self.ignore_bottom:
                weight[i, max(0, h - self.ignore_bottom) : h] = 0
        labels = torch.where(valid, labels, torch.full_like(labels, ctx.ignore_index))
        return PseudoLabels(
            labels, weight, probs=probs, valid=valid, extras=dict(conf=conf, quality=quality)
        )
