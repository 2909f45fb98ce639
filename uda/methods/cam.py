"""Weak supervision from image-level labels: single-stage CAM's two terms and label filtering.

:class:`SingleStageCAM` (classification) and :class:`SingleStageCAMMask` (self-training on
PAMR-refined pseudo masks, from its ``start_iter``) train a segmentor from image labels alone
(Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020,
arXiv:2005.08104; reference visinf/1-stage-wseg ``models/stage_net.py`` ``SoftMaxAE``,
``train.py``, ``core/config.py``, commit d905fca). The reference switches the mask loss on
after ``TRAIN.PRETRAIN`` classification-only epochs (train.py:83); here that is the mask
term's ``start_iter``, an adapter setting like every term's phase. The two halves of one
method share this file, as the adversarial family's terms share ``adversarial.py``. The
segmentation logits are the class activation maps, as in the reference, where the segmentation
head's C - 1 maps plus a constant background logit are both the CAMs and the predicted
segmentation. :class:`ImageLabelFilter` uses the same labels in adaptation: it drops
pseudo-labels of classes that an image's labels say are absent.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from uda.losses.cam import (
    CAMLayout,
    balanced_mask_ce,
    focal_mask_penalty,
    ngwp_scores,
    pseudo_masks,
)
from uda.methods.context import PseudoLabels, StepContext, ViewPseudoLabels
from uda.methods.term import DerivedLabeller, Term
from uda.models.pamr import PAMR
from uda.registry import LABELLERS, TERMS
from uda.visualization import image_panel

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter


@TERMS.register_module()
class SingleStageCAM(Term):
    """Single-stage segmentation from image-level labels: the classification term.

    On ``branch`` (image labels [B, C] from :meth:`StepContext.image_labels`), with x the
    student's logits with the background first and m = softmax(x) (:class:`CAMLayout`): scores
    ``nGWP(x, m) + focal(m)`` of the non-background classes against the image labels,
    multi-label soft-margin loss (``NET.LOSS: SoftMargin``). The method's second part, the
    mask loss on PAMR-refined pseudo masks, is its own term (:class:`SingleStageCAMMask`),
    which the adapter starts at its ``start_iter`` (the reference's classification-only
    epochs); both take ``background`` / ``bg_logit`` / ``cam_stride`` from one config variable
    (``cam_maps``).

    Args:
        weight: Weight of the classification loss.
        branch: Batch branch with image-level labels.
        background: Class id of the constant-logit background, or None (:class:`CAMLayout`).
        bg_logit: The appended constant logit when ``background`` is None (1, as the
            reference's ``torch.ones_like``); None for no background channel.
        cam_stride: Masks and pooling at 1/``cam_stride`` of the input (average-pooled
            logits).
        focal_power: Exponent of the focal mask penalty (``FOCAL_P`` = 3).
        focal_lambda: Offset inside its log (``FOCAL_LAMBDA`` = 0.01).
    """

    console_keys = ('fg_share',)

    def __init__(
        self,
        weight: float = 1.0,
        branch: str = 'source',
        background: Optional[int] = None,
        bg_logit: Optional[float] = 1.0,
        cam_stride: int = 1,
        focal_power: float = 3.0,
        focal_lambda: float = 0.01,
        **moved: Any,
    ) -> None:
        if moved:
            # Configs written before issue 23 gave the mask loss's settings to this term.
            raise TypeError(
                f'SingleStageCAM({", ".join(sorted(moved))}=...): the PAMR mask loss is its own '
                'term since issue 23: move these settings to terms.<name>_mask=dict(type='
                "'SingleStageCAMMask', start_iter=<mask_start_iter>, weight=<mask_weight>, "
                'fg_ratio=..., bg_ratio=..., floor=..., pamr_iter=..., pamr_dilations=...) '
                'with the same background / bg_logit / cam_stride (configs/_base_/methods/cam.py).'
            )
        super().__init__(weight)
        self.branch = branch
        self.layout = CAMLayout.of('SingleStageCAM', background, bg_logit, cam_stride)
        self.focal_power, self.focal_lambda = float(focal_power), float(focal_lambda)

    def setup(self, adapter: Adapter) -> None:
        const = getattr(adapter.student, 'constant_logit', None)
        self.layout.check_segmentor('SingleStageCAM', adapter.num_classes, const)

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        logits = ctx.student(self.branch)['logits']
        fg, _ = self.layout.class_order(logits.shape[1])
        y = ctx.image_labels(self.branch)[:, fg]
        maps = self.layout.maps(logits, ctx.valid_pixels(self.branch))
        masks = maps.masks
        mbar = masks.flatten(2).sum(-1) / maps.pooled_valid.flatten(2).sum(-1).clamp(min=1)
        scores = ngwp_scores(maps.pooled, masks) + focal_mask_penalty(
            mbar[..., None, None], self.focal_power, self.focal_lambda
        )
        off = int(self.layout.has_bg)  # index of the first labelled class in the maps
        loss_cls = F.multilabel_soft_margin_loss(scores[:, off:], y)
        # The share of the labelled classes' masks (``cls_fg`` in the reference's log).
        fg_share = (mbar[:, off:] * y).sum(-1) / y.sum(-1).clamp(min=1)
        return {'loss': self.weight * loss_cls, 'fg_share': fg_share.mean().detach()}


@TERMS.register_module()
class SingleStageCAMMask(Term):
    """Class-balanced cross-entropy of the student's logits on pseudo masks of its own CAMs.

    On ``branch`` (image labels [B, C]): the masks m = softmax(x) of the background-first
    logits x (:class:`uda.losses.cam.CAMLayout`, the same maps as the classification term
    :class:`uda.methods.SingleStageCAM` reads), detached, refined by
    :class:`uda.models.pamr.PAMR` on the image, classes absent from the image labels zeroed,
    turned into pseudo masks (:func:`uda.losses.cam.pseudo_masks`) and learnt with the
    class-balanced cross-entropy (:func:`uda.losses.cam.balanced_mask_ce`), weight
    ``weight`` (``MASK_LOSS_BCE``). The loss is on the full logits, pseudo masks upsampled
    bilinearly, as the reference. An image counts when its pseudo masks hold every labelled
    class, and the background when it is a class (``background``; the reference always
    requires it).

    Config: ``start_iter`` (an adapter setting) is the first iteration with the mask loss, the
    reference's ``TRAIN.PRETRAIN`` = 5 classification-only epochs (5 x floor(10582 / 16) =
    3305 iterations of VOC train_aug at batch 16 with drop_last: visinf/1-stage-wseg
    train.py:83, datasets/__init__.py:22-29). ``background``, ``bg_logit`` and ``cam_stride``
    come from the one config variable the classification term reads too (``cam_maps``).

    Args:
        weight: Weight of the mask loss (``MASK_LOSS_BCE`` = 1.0).
        branch: Batch branch with image-level labels.
        background: Class id of the constant-logit background, or None (:class:`CAMLayout`).
        bg_logit: The appended constant logit when ``background`` is None; None for none.
        cam_stride: Masks and PAMR at 1/``cam_stride`` of the input (average-pooled logits).
        fg_ratio: Pseudo-mask threshold as a fraction of a class's peak (0.6).
        bg_ratio: The same for the background (0.7).
        floor: Lowest pseudo-mask threshold (0.2).
        pamr_iter: PAMR iterations (``PAMR_ITER`` = 10).
        pamr_dilations: PAMR dilations (``PAMR_KERNEL`` = 1, 2, 4, 8, 12, 24).
    """

    def __init__(
        self,
        weight: float = 1.0,
        branch: str = 'source',
        background: Optional[int] = None,
        bg_logit: Optional[float] = 1.0,
        cam_stride: int = 1,
        fg_ratio: float = 0.6,
        bg_ratio: float = 0.7,
        floor: float = 0.2,
        pamr_iter: int = 10,
        pamr_dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
    ) -> None:
        super().__init__(weight)
        self.branch = branch
        self.layout = CAMLayout.of('SingleStageCAMMask', background, bg_logit, cam_stride)
        self.fg_ratio, self.bg_ratio, self.floor = float(fg_ratio), float(bg_ratio), float(floor)
        self.pamr = PAMR(pamr_iter, pamr_dilations)
        self._panels: dict[str, Tensor] = {}

    def setup(self, adapter: Adapter) -> None:
        const = getattr(adapter.student, 'constant_logit', None)
        self.layout.check_segmentor('SingleStageCAMMask', adapter.num_classes, const)

    def _key(self, what: str) -> str:
        return f'{self.term_name or "cam_mask"}.{what}'

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        logits = ctx.student(self.branch)['logits']
        fg, ids = self.layout.class_order(logits.shape[1])
        y = ctx.image_labels(self.branch)[:, fg]
        maps = self.layout.maps(logits, ctx.valid_pixels(self.branch))
        x_full, x = maps.logits, maps.pooled
        off = int(self.layout.has_bg)  # index of the first labelled class in the maps
        with torch.no_grad():
            image = ctx.denormalize(ctx.inputs(self.branch)).float() / 255.0
            if image.shape[-2:] != x.shape[-2:]:
                image = F.interpolate(image, x.shape[-2:], mode='bilinear', align_corners=True)
            # PAMR is linear in each mask channel, so channels of classes no image of the
            # batch is labelled with (zeroed below anyway) are skipped.
            keep = torch.cat([y.new_ones(off), y.amax(0)]) > 0
            masks = maps.masks.detach()
            refined = torch.zeros_like(masks)
            refined[:, keep] = self.pamr(image, masks[:, keep])
            if refined.shape[-2:] != x_full.shape[-2:]:
                refined = F.interpolate(
                    refined, x_full.shape[-2:], mode='bilinear', align_corners=True
                )
            refined[:, off:] *= y[..., None, None]  # classes absent from the image labels
            bg_ratio = self.bg_ratio if self.layout.has_bg else self.fg_ratio
            pseudo = pseudo_masks(refined, self.fg_ratio, bg_ratio, self.floor) * maps.valid
            bg_required = y[:, :off] * 0 + float(self.layout.background is not None)
            required = torch.cat([bg_required, y], 1)
        loss_img, counted = balanced_mask_ce(x_full, pseudo, required, ctx.ignore_index)
        self._panels = self._make_panels(ctx, refined, pseudo, ids)
        return {
            'loss': self.weight * loss_img.mean(),
            'mask_images': counted.mean().detach(),
            'pseudo_ratio': (pseudo.sum(1) > 0).float().mean().detach(),
        }

    def _make_panels(
        self, ctx: StepContext, refined: Tensor, pseudo: Tensor, ids: list[int]
    ) -> dict[str, Tensor]:
        """First image: refined CAMs (arg-max) and pseudo labels, as class ids."""
        lut = torch.tensor([ctx.ignore_index if i < 0 else i for i in ids], device=refined.device)
        cam = lut[refined[0].argmax(0)]
        lbl = torch.where(
            pseudo[0].sum(0) > 0,
            lut[pseudo[0].argmax(0)],
            torch.full_like(cam, ctx.ignore_index),
        )
        image = ctx.denormalize(ctx.inputs(self.branch)[:1])[0]
        return {
            self._key('image'): image_panel(image),
            self._key('refined_cam'): cam.detach(),
            self._key('pseudo_labels'): lbl.detach(),
        }

    def vis_panels(self) -> dict[str, Tensor]:
        return dict(self._panels)


@LABELLERS.register_module()
class ImageLabelFilter(DerivedLabeller):
    """Another labeller's pseudo-labels with classes absent from the image labels ignored.

    Image-level target labels as an extra adaptation signal: a pixel pseudo-labelled with a
    class that its image's labels (:meth:`StepContext.image_labels`) do not name is set to the
    ignore index, weight 0. Works on per-image labels [B, H, W] and on SAC's views
    (:class:`ViewPseudoLabels` [B' * V, H, W]: ``views.num_views`` views of the first B'
    images, image-major). The wrapped labeller's fields are kept; ``extras`` gains
    ``suppressed``. No reference implementation combines image labels with UDA
    self-training; this is uda's.

    Args:
        labeller: Name of the wrapped labeller (e.g. ``'sac'``).
    """

    labeller_args = {'labeller': dict(type='SACLabeller')}

    def __init__(self, labeller: str = 'sac') -> None:
        super().__init__(labeller)

    @torch.no_grad()
    def derive(self, ctx: StepContext, branch: str, pl: PseudoLabels) -> PseudoLabels:
        present = ctx.image_labels(branch)  # [B, C]
        per_image = 1
        if isinstance(pl, ViewPseudoLabels) and pl.views is not None:
            per_image = int(pl.views.num_views)
        n_img = pl.labels.shape[0] // per_image
        if n_img * per_image != pl.labels.shape[0] or n_img > present.shape[0]:
            raise ValueError(
                f"ImageLabelFilter: labeller '{self.labeller}' gives {pl.labels.shape[0]} label "
                f'maps for {present.shape[0]} images; it must give one per image, or '
                'views.num_views per image (SAC).'
            )
        present = present[:n_img].repeat_interleave(per_image, 0)
        labels = pl.labels
        known = labels != ctx.ignore_index
        cls = labels.clamp(0, present.shape[1] - 1).flatten(1)
        absent = known & (present.gather(1, cls).view_as(labels) == 0)
        return dataclasses.replace(
            pl,
            labels=labels.masked_fill(absent, ctx.ignore_index),
            weight=pl.weight.masked_fill(absent, 0.0),
            extras=dict(pl.extras, suppressed=absent),
        )


__all__ = ['ImageLabelFilter', 'SingleStageCAM', 'SingleStageCAMMask']
