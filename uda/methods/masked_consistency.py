"""MIC: masked image consistency (Hoyer et al., CVPR 2023, arXiv:2212.01322).

Reference code lhoyer/MIC ``seg/mmseg/models/uda/masking_consistency_module.py`` (mask mode
``separatetrgaug``, the default of its segmentation configs) and
``seg/mmseg/models/utils/masking_transforms.py``: the target image is strongly augmented
(DACS's colour jitter and blur), then random blocks of it are masked out; the student must
predict the teacher's pseudo-labels of the **unmasked** target from the visible context. The
pseudo-labels and their weights are those of the host method (DACS), shared here through the
named labeller, so MIC + ClassMix run the teacher once per step.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from uda.augment.mixing import block_masks
from uda.augment.photometric import build_photometric
from uda.losses import cross_entropy
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS
from uda.visualization import image_panel, mask_panel

# MIC's strong view (uda.augment.photometric.DACS_STRONG: the reference's batch coins).
DACS_STRONG_VIEW = dict(preset='dacs_strong')


@TERMS.register_module()
class MaskedConsistency(Term):
    """MIC's masked consistency on the target branch.

    masked view = ``strong(x) * keep`` with ``x`` the normalised target images [B, 3, H, W],
    ``strong`` DACS's colour jitter + blur and ``keep`` [B, H, W] a block mask
    (:func:`uda.augment.mixing.block_masks`: a ``round(H / block_size) x round(W /
    block_size)`` grid, a cell kept when U(0, 1) > ``mask_ratio``), so masked pixels are 0 in
    the normalised input (the dataset mean colour), as MIC's ``BlockMaskGenerator.mask_image``
    multiplies the normalised image. The loss is
    ``weight * mean(w * CE(student(view), y))`` over all pixels, where ``y`` / ``w`` are the
    labeller's pseudo-labels / weights of the unmasked target (the DACS quality in MIC).

    The term needs a teacher only through its labeller: with a teacher labeller it starts with
    the teacher (its ``start_iter``), with ``source='student'`` at iteration 0.

    Args:
        weight: Loss weight (``mask_lambda`` 1 in MIC).
        branch: Unlabelled target branch ([B, 3, H, W]), the labeller's branch.
        labeller: Name of the adapter's labeller, shared with ClassMix.
        block_size: Side of a mask cell in pixels (64).
        mask_ratio: Probability that a cell is masked out (0.7).
        photometric: Strong view of the target before masking (mode ``separatetrgaug``), one
            config dict (:func:`uda.augment.photometric.build_photometric`):
            ``dict(preset='dacs_strong')`` (``color_jitter_strength`` 0.2, applied when U(0, 1)
            > ``color_jitter_probability`` 0.2; blur p 0.5, sigma 0.15-1.15; one coin per step,
            masking_consistency_module.py:119-130); None for no augmentation.
    """

    labeller_args = {'labeller': dict(type='QualityLabeller')}

    def __init__(
        self,
        weight: float = 1.0,
        branch: str = 'target',
        labeller: str = 'teacher_quality',
        block_size: int = 64,
        mask_ratio: float = 0.7,
        photometric: Optional[dict] = DACS_STRONG_VIEW,
    ) -> None:
        super().__init__(weight)
        if int(block_size) < 1 or not 0.0 <= float(mask_ratio) <= 1.0:
            raise ValueError(
                f'MaskedConsistency(block_size={block_size}, mask_ratio={mask_ratio}): use '
                'block_size >= 1 and mask_ratio in [0, 1] (MIC: 64, 0.7).'
            )
        self.branch, self.labeller = branch, labeller
        self.block_size, self.mask_ratio = int(block_size), float(mask_ratio)
        self.photometric = build_photometric(photometric, 'MaskedConsistency(photometric=...)')
        self._panels: dict[str, Tensor] = {}

    @torch.no_grad()
    def masked_view(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """The masked target view [B, 3, H, W] (normalised) and its keep mask [B, H, W]
        (1 = visible)."""
        x = ctx.inputs(self.branch)
        B, _, H, W = x.shape
        valid = ctx.valid_pixels(self.branch)
        keep = block_masks(B, H, W, self.block_size, self.mask_ratio, device=x.device)
        return ctx.photometric_view(x, self.photometric, valid) * keep[:, None].to(x.dtype), keep

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        pl = ctx.pseudo_labels(self.branch, self.labeller)
        view, keep = self.masked_view(ctx)
        if pl.labels.shape != keep.shape:
            raise ValueError(
                f"MaskedConsistency: labeller '{self.labeller}' gives labels "
                f'{tuple(pl.labels.shape)} but the branch is {tuple(keep.shape)}; use a '
                'per-image labeller (QualityLabeller, ConfidenceLabeller).'
            )
        logits = ctx.student_forward(view)['logits']
        loss = cross_entropy(
            logits.float(),
            pl.labels,
            pixel_weight=pl.weight,
            ignore_index=ctx.ignore_index,
            avg_non_ignore=False,
        )
        self._panels = self._make_panels(ctx, view, keep)
        return {
            'loss_ce': self.weight * loss,
            'visible': keep.mean().detach(),
        }

    @staticmethod
    def _make_panels(ctx: StepContext, view: Tensor, keep: Tensor) -> dict[str, Any]:
        """First image: the masked view and the keep mask."""
        return {
            'mic_masked_view': image_panel(ctx.denormalize(view[:1])[0]),
            'mic_keep_mask': mask_panel(keep[0] > 0),
        }

    def vis_panels(self) -> dict[str, Tensor]:
        return dict(self._panels)
