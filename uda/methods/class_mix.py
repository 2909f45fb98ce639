"""DACS: domain adaptation via cross-domain mixed sampling (Tranheden et al., WACV 2021).

arXiv:2007.08702, reference code vikolss/DACS ``trainUDA.py`` and its re-implementation in
lhoyer/DAFormer ``mmseg/models/uda/dacs.py`` / ``mmseg/models/utils/dacs_transforms.py``. Half
of the classes of each source image are pasted onto a target image (ClassMix); the mixed label
is the source label on pasted pixels and the teacher's pseudo-label elsewhere, the mixed pixel
weight 1 on pasted pixels and the pseudo-labels' quality elsewhere; the student is trained with
the weighted cross-entropy on the strongly augmented mixed image.

The ClassMix classes come from the whole source batch by default, as the reference code
(``class_pool='batch'``); ``class_pool='image'`` draws them from each image's own label. The
strong augmentation flips its coins once per batch, as the reference (the preset's
``coins='batch'``; ``'image'``: per image); see docs/fidelity.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from uda.augment.mixing import CLASS_POOLS, class_mix_masks, mix
from uda.augment.photometric import build_photometric
from uda.losses import cross_entropy
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS
from uda.visualization import image_panel, mask_panel


class MixedBatch(NamedTuple):
    """A ClassMix batch: what the student sees and what it is trained towards.

    Attributes:
        image: [B, 3, H, W] normalised mixed images (after the strong augmentation).
        labels: [B, H, W] source labels on pasted pixels, pseudo-labels elsewhere.
        weight: [B, H, W] 1 on pasted pixels, the pseudo-label weight elsewhere.
        mask: [B, H, W] bool, True on pasted (source) pixels.
    """

    image: Tensor
    labels: Tensor
    weight: Tensor
    mask: Tensor


# DACS's strong view (uda.augment.photometric.DACS_STRONG: the reference's batch coins).
DACS_STRONG_VIEW = dict(preset='dacs_strong')


@TERMS.register_module()
class ClassMix(Term):
    """DACS cross-domain ClassMix self-training (vikolss/DACS ``trainUDA.py`` L424-486).

    Per image ``i``: ``mask_i`` = the pixels of label ``i`` of ``ceil(n / 2)`` of the ``n``
    classes of the source batch (``class_pool='batch'``) or of label ``i``
    (``class_pool='image'``) (:func:`uda.augment.mixing.class_mix_masks`); mixed image =
    source where ``mask_i``, target elsewhere (both normalised, so their padding stays 0),
    then the strong augmentation; mixed label = source label where ``mask_i``, the
    labeller's pseudo-label elsewhere; mixed weight = 1 where ``mask_i``, the pseudo-label
    weight elsewhere (DACS quality q: the share of teacher pixels with max softmax >= 0.968
    over the batch). The loss is ``weight * mean(w * CE(student(mixed), label))`` over all
    pixels, as DACS's ``(ce * pixel_weight).mean()``.

    The term needs a teacher only through its labeller: with a teacher labeller it starts with
    the teacher (its ``start_iter``), with ``source='student'`` at iteration 0.

    Args:
        weight: Loss weight (1 in DACS / DAFormer).
        source_branch: Labelled branch whose pixels are pasted ([B, 3, H, W] + gt).
        target_branch: Unlabelled branch pasted onto, the labeller's branch.
        labeller: Name of the adapter's labeller (``QualityLabeller``: DACS), shared with other
            terms, so MIC's masked consistency reads the same teacher forward.
        photometric: Strong augmentation of the mixed images, one config dict
            (:func:`uda.augment.photometric.build_photometric`): ``dict(preset='dacs_strong')``
            (DACS / DAFormer: jitter 0.2, p 0.8; blur p 0.5, sigma 0.15-1.15; one coin per
            batch), keys beside ``preset`` override it (DACS: ``jitter=(0.25,) * 4``); None
            for no augmentation.
        class_pool: ``'batch'`` (the DACS / DAFormer / MIC code) or ``'image'``.
    """

    labeller_args = {'labeller': dict(type='QualityLabeller')}
    console_keys = ('quality',)

    def __init__(
        self,
        weight: float = 1.0,
        source_branch: str = 'source',
        target_branch: str = 'target',
        labeller: str = 'teacher_quality',
        photometric: Optional[dict] = DACS_STRONG_VIEW,
        class_pool: str = 'batch',
    ) -> None:
        super().__init__(weight)
        if class_pool not in CLASS_POOLS:
            raise ValueError(
                f"ClassMix(class_pool={class_pool!r}): use 'batch' (DACS code) or 'image'."
            )
        self.class_pool = class_pool
        self.source_branch, self.target_branch = source_branch, target_branch
        self.labeller = labeller
        self.photometric = build_photometric(photometric, 'ClassMix(photometric=...)')
        self._panels: dict[str, Tensor] = {}

    def mixed_batch(self, ctx: StepContext) -> MixedBatch:
        """Compose the ClassMix batch of this step (no gradient)."""
        pl = ctx.pseudo_labels(self.target_branch, self.labeller)
        src, tgt = ctx.inputs(self.source_branch), ctx.inputs(self.target_branch)
        src_labels = ctx.labels(self.source_branch)
        if src.shape != tgt.shape:
            raise ValueError(
                f'ClassMix: branches {self.source_branch!r} {tuple(src.shape)} and '
                f'{self.target_branch!r} {tuple(tgt.shape)} differ; give both datasets the same '
                'crop size and batch size.'
            )
        if pl.labels.shape != src_labels.shape:
            raise ValueError(
                f"ClassMix: labeller '{self.labeller}' gives labels {tuple(pl.labels.shape)} "
                f'but the batch is {tuple(src_labels.shape)}; use a per-image labeller '
                '(QualityLabeller, ConfidenceLabeller).'
            )
        with torch.no_grad():
            mask = class_mix_masks(src_labels, ctx.ignore_index, pool=self.class_pool)
            valid = mask | ctx.valid_pixels(self.target_branch)
            image = ctx.photometric_view(mix(mask, src, tgt), self.photometric, valid)
            labels = mix(mask, src_labels, pl.labels)
            weight = mix(mask, torch.ones_like(pl.weight), pl.weight)
        return MixedBatch(image, labels, weight, mask)

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        batch = self.mixed_batch(ctx)
        logits = ctx.student_forward(batch.image)['logits']
        loss = cross_entropy(
            logits.float(),
            batch.labels,
            pixel_weight=batch.weight,
            ignore_index=ctx.ignore_index,
            avg_non_ignore=False,
        )
        pl = ctx.pseudo_labels(self.target_branch, self.labeller)
        self._panels = self._make_panels(ctx, batch)
        return {
            'loss_ce': self.weight * loss,
            # Mean pseudo-label weight of the target images (DACS quality q).
            'quality': pl.weight.mean().detach(),
        }

    @staticmethod
    def _make_panels(ctx: StepContext, batch: MixedBatch) -> dict[str, Any]:
        """First image: the mixed image, its label and the pasted-pixel mask."""
        return {
            'classmix_image': image_panel(ctx.denormalize(batch.image[:1])[0]),
            'classmix_label': batch.labels[0].detach(),
            'classmix_mask': mask_panel(batch.mask[0]),
        }

    def vis_panels(self) -> dict[str, Tensor]:
        return dict(self._panels)
