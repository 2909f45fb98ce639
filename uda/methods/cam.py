"""Weak supervision from image-level labels: single-stage CAM training and label filtering.

:class:`SingleStageCAM` trains a segmentor from image labels alone (Araslanov & Roth,
"Single-Stage Semantic Segmentation from Image Labels", CVPR 2020, arXiv:2005.08104; reference
visinf/1-stage-wseg ``models/stage_net.py`` ``SoftMaxAE``, ``train.py``, ``core/config.py``,
commit d905fca). The segmentation logits are the class activation maps, as in the reference,
where the segmentation head's C - 1 maps plus a constant background logit are both the CAMs
and the predicted segmentation. :class:`ImageLabelFilter` uses the same labels in adaptation:
it drops pseudo-labels of classes that an image's labels say are absent.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from uda.losses.cam import balanced_mask_ce, focal_mask_penalty, ngwp_scores, pseudo_masks
from uda.methods.context import PseudoLabels, StepContext, ViewPseudoLabels
from uda.methods.term import DerivedLabeller, Term
from uda.models.pamr import PAMR
from uda.registry import LABELLERS, TERMS
from uda.visualization import image_panel

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter


@TERMS.register_module()
class SingleStageCAM(Term):
    """Single-stage segmentation from image-level labels (nGWP + focal penalty + PAMR).

    On ``branch`` (image labels [B, C] from :meth:`StepContext.image_labels`), with x the
    student's logits with the background first and m = softmax(x):

    1. Classification: scores ``nGWP(x, m) + focal(m)`` of the non-background classes against
       the image labels, multi-label soft-margin loss (``NET.LOSS: SoftMargin``).
    2. From ``mask_start_iter`` on (the reference's ``TRAIN.PRETRAIN`` = 5 classification-only
       epochs): masks m (detached) refined by :class:`uda.models.pamr.PAMR` on the image,
       classes absent from the image labels zeroed, turned into pseudo masks
       (:func:`uda.losses.cam.pseudo_masks`) and learnt with the class-balanced cross-entropy
       (:func:`uda.losses.cam.balanced_mask_ce`), weight ``mask_weight`` (``MASK_LOSS_BCE``).

    The background logit is constant. With ``background`` (a class id, VOC's 0) the segmentor
    must produce it (``segmentor.constant_logit=dict(index=background, value=1.0)``), so it is
    the background class at test time too. Without (data with no background class: CamVid,
    Cityscapes) the term appends a constant "no labelled class" logit ``bg_logit`` that exists
    only in training: it takes part in pooling, pseudo masks and the mask loss, not in
    predictions, and an image's mask loss then needs only its labelled classes to appear (the
    reference also requires the background). ``bg_logit=None`` drops the background altogether
    (street scenes, where every pixel has a class): softmax, pooling and pseudo masks run over
    the classes only.

    Args:
        weight: Weight of the classification loss.
        branch: Batch branch with image-level labels.
        background: Class id of the constant-logit background, or None (see above).
        bg_logit: The appended constant logit when ``background`` is None (1, as the
            reference's ``torch.ones_like``); None for no background channel.
        focal_power: Exponent of the focal mask penalty (``FOCAL_P`` = 3).
        focal_lambda: Offset inside its log (``FOCAL_LAMBDA`` = 0.01).
        mask_weight: Weight of the mask loss (``MASK_LOSS_BCE`` = 1.0).
        mask_start_iter: First iteration with the mask loss (5 epochs of the 10582 VOC
            train_aug images at batch 16 with drop_last = 5 x 661 = 3305 iterations in the
            reference: visinf/1-stage-wseg train.py:83, datasets/__init__.py:22-29).
        fg_ratio: Pseudo-mask threshold as a fraction of a class's peak (0.6).
        bg_ratio: The same for the background (0.7).
        floor: Lowest pseudo-mask threshold (0.2).
        pamr_iter: PAMR iterations (``PAMR_ITER`` = 10).
        pamr_dilations: PAMR dilations (``PAMR_KERNEL`` = 1, 2, 4, 8, 12, 24).
        cam_stride: Masks, pooling and PAMR at 1/``cam_stride`` of the input (average-pooled
            logits); the reference's masks come from stride-4 features (its decoder), which
            ``cam_stride=4`` mirrors for full-resolution decoders. The mask loss is on the full
            logits, pseudo masks upsampled bilinearly, as the reference.
    """

    console_keys = ('fg_share',)

    def __init__(
        self,
        weight: float = 1.0,
        branch: str = 'source',
        background: Optional[int] = None,
        bg_logit: Optional[float] = 1.0,
        focal_power: float = 3.0,
        focal_lambda: float = 0.01,
        mask_weight: float = 1.0,
        mask_start_iter: int = 0,
        fg_ratio: float = 0.6,
        bg_ratio: float = 0.7,
        floor: float = 0.2,
        pamr_iter: int = 10,
        pamr_dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
        cam_stride: int = 1,
    ) -> None:
        super().__init__(weight)
        if cam_stride < 1:
            raise ValueError(f'SingleStageCAM(cam_stride={cam_stride}): use an integer >= 1.')
        self.branch = branch
        self.background = None if background is None else int(background)
        self.bg_logit = None if bg_logit is None else float(bg_logit)
        # Channel 0 of the working tensors is a background (constant logit) unless neither is
        # given.
        self.has_bg = self.background is not None or self.bg_logit is not None
        self.focal_power, self.focal_lambda = float(focal_power), float(focal_lambda)
        self.mask_weight, self.mask_start_iter = float(mask_weight), int(mask_start_iter)
        self.fg_ratio, self.bg_ratio, self.floor = float(fg_ratio), float(bg_ratio), float(floor)
        self.pamr = PAMR(pamr_iter, pamr_dilations)
        self.cam_stride = int(cam_stride)
        self._panels: dict[str, Tensor] = {}

    def setup(self, adapter: Adapter) -> None:
        if self.background is None:
            return
        C = adapter.num_classes
        const = getattr(adapter.student, 'constant_logit', None)
        if not 0 <= self.background < C or const is None or const[0] != self.background:
            raise ValueError(
                f'SingleStageCAM(background={self.background}): the background logit must be '
                f'the constant of the segmentor; set segmentor.constant_logit=dict('
                f'index={self.background}, value=1.0) (a class id in 0..{C - 1}), or '
                'background=None for data without a background class.'
            )

    def _key(self, what: str) -> str:
        return f'{self.term_name or "cam"}.{what}'

    def class_order(self, num_classes: int) -> tuple[list[int], list[int]]:
        """``(fg, ids)``: the labelled classes, and the class id of each channel of the
        background-first tensors (-1 for the appended training-only background)."""
        fg = [c for c in range(num_classes) if c != self.background]
        if not self.has_bg:
            return fg, fg
        return fg, [-1 if self.background is None else self.background] + fg

    def background_first(self, logits: Tensor) -> Tensor:
        """[B, C, H, W] logits -> [B, 1 + |fg|, H, W] with the (constant) background first."""
        fg, _ = self.class_order(logits.shape[1])
        if not self.has_bg:
            return logits
        if self.background is None:
            assert self.bg_logit is not None
            bg = torch.zeros_like(logits[:, :1]) + self.bg_logit
        else:
            bg = logits[:, self.background : self.background + 1]
        return torch.cat([bg, logits[:, fg]], 1)

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        logits = ctx.student(self.branch)['logits']
        labels = ctx.image_labels(self.branch)
        fg, ids = self.class_order(logits.shape[1])
        y = labels[:, fg]
        x_full = self.background_first(logits.float())
        valid_full = ctx.valid_pixels(self.branch)[:, None].to(x_full.dtype)
        x, valid = x_full, valid_full
        if self.cam_stride > 1:
            x = F.avg_pool2d(x_full, self.cam_stride, ceil_mode=True)
            valid = (F.avg_pool2d(valid_full, self.cam_stride, ceil_mode=True) > 0.5).to(x.dtype)
        masks = x.softmax(1) * valid  # padding takes no part in pooling
        mbar = masks.flatten(2).sum(-1) / valid.flatten(2).sum(-1).clamp(min=1)
        scores = ngwp_scores(x, masks) + focal_mask_penalty(
            mbar[..., None, None], self.focal_power, self.focal_lambda
        )
        off = int(self.has_bg)  # index of the first labelled class in the working tensors
        loss_cls = F.multilabel_soft_margin_loss(scores[:, off:], y)
        # The share of the labelled classes' masks (``cls_fg`` in the reference's log).
        fg_share = (mbar[:, off:] * y).sum(-1) / y.sum(-1).clamp(min=1)
        out = {
            'loss_cls': self.weight * loss_cls,
            'fg_share': fg_share.mean().detach(),
        }
        if ctx.iter < self.mask_start_iter:
            return out
        with torch.no_grad():
            image = ctx.denormalize(ctx.inputs(self.branch)).float() / 255.0
            if image.shape[-2:] != x.shape[-2:]:
                image = F.interpolate(image, x.shape[-2:], mode='bilinear', align_corners=True)
            # PAMR is linear in each mask channel, so channels of classes no image of the
            # batch is labelled with (zeroed below anyway) are skipped.
            keep = torch.cat([y.new_ones(off), y.amax(0)]) > 0
            refined = torch.zeros_like(masks)
            refined[:, keep] = self.pamr(image, masks.detach()[:, keep])
            if refined.shape[-2:] != x_full.shape[-2:]:
                refined = F.interpolate(
                    refined, x_full.shape[-2:], mode='bilinear', align_corners=True
                )
            refined[:, off:] *= y[..., None, None]  # classes absent from the image labels
            bg_ratio = self.bg_ratio if self.has_bg else self.fg_ratio
            pseudo = pseudo_masks(refined, self.fg_ratio, bg_ratio, self.floor) * valid_full
            bg_required = y[:, :off] * 0 + float(self.background is not None)
            required = torch.cat([bg_required, y], 1)
        loss_img, counted = balanced_mask_ce(x_full, pseudo, required, ctx.ignore_index)
        out['loss_mask'] = self.mask_weight * loss_img.mean()
        out['mask_images'] = counted.mean().detach()
        out['pseudo_ratio'] = (pseudo.sum(1) > 0).float().mean().detach()
        self._panels = self._make_panels(ctx, refined, pseudo, ids)
        return out

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
            f'{self._key("image")}': image_panel(image),
            f'{self._key("refined_cam")}': cam.detach(),
            f'{self._key("pseudo_labels")}': lbl.detach(),
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


__all__ = ['ImageLabelFilter', 'SingleStageCAM']
