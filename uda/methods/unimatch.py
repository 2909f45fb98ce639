"""UniMatch: weak-to-strong consistency with CutMix and feature perturbation (Yang et al.,
CVPR 2023, arXiv:2208.09910), and its special cases FixMatch and the mean teacher.

Reference: LiheYoung/UniMatch@0324f3d ``unimatch.py`` (and ``fixmatch.py``, the same step with
one strong view and no feature perturbation). Per step, for an unlabelled batch ``u`` and a
second unlabelled batch ``m`` (the CutMix partner: in UniMatch another crop of the same images,
``zip(trainloader_l, trainloader_u, trainloader_u)``, unimatch.py:121; uda's semi dataset
bases give the ``unlabeled_mix`` branch ``follow=dict(unlabeled_mix='unlabeled')`` in
:class:`uda.data.MultiBranchInfiniteSampler` for that):

* pseudo-labels of the weak view ``u`` (UniMatch: the student's training-mode forward,
  detached) and of ``m`` (UniMatch: the student in eval mode), kept where the confidence
  reaches the threshold (0.95 Pascal, 0 Cityscapes) and the pixel is not padding;
* ``S`` strong views of ``u`` (colour jitter, greyscale, blur), each with its own CutMix box
  (p 0.5, area U(0.02, 0.4), aspect U(0.3, 1/0.3)) into which the partner's own strong view is
  pasted; the box takes the partner's labels, confidences and padding;
* feature perturbation: Dropout2d(0.5) on the encoder features of the weak view's forward,
  decoded again (the encoder runs once; ``unimatch.py`` ``model(..., need_fp=True)``);
* each unlabelled loss is the pixel cross-entropy masked by confidence and non-padding,
  summed and divided by the number of non-padding pixels (not by the confident ones).

UniMatch's objective is ``(L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2``. uda sums the terms'
losses, so the /2 is split over the terms: ``SourceCE(weight=0.5)`` on the labelled branch and
this term with ``weight=0.5``, ``strong_weights=(0.25, 0.25)``, ``fp_weight=0.5``
(``configs/_base_/methods/unimatch.py``). FixMatch (``fixmatch.py``): ``strong_weights=(1.0,)``,
``fp_weight=0``; the mean teacher (UniMatch-V2): the same with teacher labellers.

BatchNorm batches as the reference: with ``joint_branch='labeled'`` the labelled and weak
batches go through the student as one batch (``model(torch.cat((img_x, img_u_w)))``,
unimatch.py:151, fixmatch.py:146), and with ``fp_decode='joint'`` the clean and dropped
features of that batch are decoded together (model/semseg/deeplabv3plus.py:44-50), so the
decoder's BatchNorm sees both; ``joint_branch=None`` / ``fp_decode='separate'`` forward each
branch and decode the dropped features on their own (BatchNorm statistics per batch). Strong
views are made on the device (kornia, per-image parameters) from the weak crops instead of PIL
in the workers (docs/fidelity.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from uda.augment.mixing import cutmix_boxes, mix
from uda.augment.photometric import build_photometric
from uda.losses import masked_consistency_loss
from uda.methods.context import PseudoLabels, StepContext
from uda.methods.term import Term
from uda.registry import TERMS

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter


def feature_dropout(
    features: Sequence[Tensor], p: float = 0.5, stages: Optional[Sequence[int]] = None
) -> list[Tensor]:
    """Channel dropout (``nn.functional.dropout2d``, training mode) on encoder ``features``.

    UniMatch drops the two stages its DeepLab-v3+ decoder reads (``c1`` and ``c4``); an smp
    decoder reads every stage, so by default every stage but stage 0 (smp's identity stage:
    the input image itself) is dropped. The inputs are left unchanged (not in place), so the
    clean forward that shares them is unaffected.

    Args:
        features: Encoder maps ``[B, C_i, H_i, W_i]`` (``SMPSegmentor.extract_feat``).
        p: Probability of zeroing a channel of an image (0.5); kept channels scale by 1/(1-p).
        stages: Indices of the stages to drop; None = all but 0.

    The result has the type and attributes of ``features``: a ViT's feature list carries its
    class tokens (``prefix_tokens``) for DPT's readout, and they pass through undropped (the
    channel dropout acts on the spatial maps only).
    """
    n = len(features)
    idx = set(range(1, n)) if stages is None else {int(s) % n for s in stages}
    dropped = [
        nn.functional.dropout2d(f, p=p, training=True) if i in idx else f
        for i, f in enumerate(features)
    ]
    if type(features) is list or not isinstance(features, list):
        return dropped
    out = type(features)(dropped)
    out.__dict__.update(vars(features))
    return out


def cutmix_targets(
    box: Tensor, own: PseudoLabels, own_valid: Tensor, partner: PseudoLabels, partner_valid: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Labels, weights and non-padding masks of a CutMixed view (UniMatch ``unimatch.py``:
    ``mask_u_w_cutmixed[cutmix_box == 1] = mask_u_w_mix[cutmix_box == 1]``, likewise the
    confidence and the ignore mask).

    Args:
        box: [B, H, W] bool, True where the partner is pasted.
        own, partner: Pseudo-labels [B, H, W] of the image and of its CutMix partner.
        own_valid, partner_valid: [B, H, W] bool non-padding pixels.

    Returns:
        ``(labels, weight, valid)``, each [B, H, W].
    """
    return (
        mix(box, partner.labels, own.labels),
        mix(box, partner.weight, own.weight),
        mix(box, partner_valid, own_valid),
    )


# UniMatch's strong view (uda.augment.photometric.UNIMATCH_STRONG).
UNIMATCH_STRONG_VIEW = dict(preset='unimatch_strong')


@TERMS.register_module()
class UniMatch(Term):
    """Unlabelled losses of UniMatch (or FixMatch / mean teacher, see the module docstring).

    Returns ``loss_s<k>`` per strong view (``weight * strong_weights[k] * L_s<k>``), ``loss_fp``
    when ``fp_weight > 0``, and ``mask_ratio`` (share of the weak view's non-padding pixels
    above the threshold; logged, not summed).

    Args:
        weight: Overall weight of the unlabelled losses (0.5: UniMatch's final /2; the
            labelled ``SourceCE`` gets 0.5 too).
        strong_weights: Weight of each strong view's loss; their number is the number of
            strong views (UniMatch (0.25, 0.25); FixMatch (1.0,)).
        fp_weight: Weight of the feature-perturbation loss (UniMatch 0.5; 0 disables it and
            the weak view's student forward is then run only if the labeller reads it).
        fp_p: Dropout2d probability on the encoder features (0.5).
        fp_stages: Encoder stages to drop (None: every stage but the input, see
            :func:`feature_dropout`).
        labeller: Labeller of the weak view ``[B, H, W]``: ConfidenceLabeller with
            ``source='student_train'`` (UniMatch / FixMatch: the train-mode forward that also
            feeds the feature perturbation) or ``'teacher'`` (mean teacher).
        mix_labeller: Labeller of the CutMix partner (UniMatch: ``source='student'``, eval
            mode; mean teacher: the teacher).
        weak_branch: Branch of the weak views [B, 3, H, W] (``'unlabeled'``).
        mix_branch: Branch of the CutMix partners (``'unlabeled_mix'``: other crops of the weak
            branch's images when the sampler's ``follow`` says so); None disables CutMix.
        cutmix_p: Probability that a strong view gets a box (0.5; ``dataset/transform.py``
            ``obtain_cutmix_box``).
        cutmix_area: Box area range as a share of the image (0.02, 0.4).
        cutmix_aspect: Box aspect ratio range (0.3, 1/0.3).
        photometric: The on-device strong view, one config dict
            (:func:`uda.augment.photometric.build_photometric`):
            ``dict(preset='unimatch_strong')`` (UniMatch ``dataset/semi.py``: ColorJitter(0.5,
            0.5, 0.5, 0.25) p 0.8, greyscale p 0.2, blur sigma 0.1-2.0 p 0.5, 13 px kernel);
            keys beside ``preset`` override it.
        joint_branch: Labelled branch forwarded with the weak branch as one batch (UniMatch /
            FixMatch: ``'labeled'``); None forwards them separately.
        fp_decode: ``'joint'``: decode the clean and the dropped features as one batch
            (UniMatch); ``'separate'``: decode the dropped features on their own.
    """

    labeller_args = {
        'labeller': dict(type='ConfidenceLabeller', threshold=0.95, source='student_train'),
        'mix_labeller': dict(type='ConfidenceLabeller', threshold=0.95, source='student'),
    }
    console_keys = ('mask_ratio',)

    def __init__(
        self,
        weight: float = 0.5,
        strong_weights: Sequence[float] = (0.25, 0.25),
        fp_weight: float = 0.5,
        fp_p: float = 0.5,
        fp_stages: Optional[Sequence[int]] = None,
        labeller: str = 'weak',
        mix_labeller: str = 'partner',
        weak_branch: str = 'unlabeled',
        mix_branch: Optional[str] = 'unlabeled_mix',
        cutmix_p: float = 0.5,
        cutmix_area: Sequence[float] = (0.02, 0.4),
        cutmix_aspect: Sequence[float] = (0.3, 1 / 0.3),
        photometric: dict = UNIMATCH_STRONG_VIEW,
        joint_branch: Optional[str] = None,
        fp_decode: str = 'joint',
    ) -> None:
        super().__init__(weight)
        if fp_decode not in ('joint', 'separate'):
            raise ValueError(
                f"UniMatch(fp_decode={fp_decode!r}): use 'joint' (clean and dropped features "
                "decoded as one batch, as UniMatch) or 'separate'."
            )
        self.joint_branch, self.fp_decode = joint_branch, fp_decode
        self.strong_weights = [float(w) for w in strong_weights]
        if not self.strong_weights and fp_weight <= 0:
            raise ValueError(
                'UniMatch: give at least one strong view (strong_weights=(0.25, 0.25)) or '
                'fp_weight > 0; otherwise the term has no loss.'
            )
        if not 0.0 <= fp_p < 1.0 or not 0.0 <= cutmix_p <= 1.0:
            raise ValueError(
                f'UniMatch(fp_p={fp_p}, cutmix_p={cutmix_p}): fp_p must be in [0, 1) and '
                'cutmix_p in [0, 1].'
            )
        self.fp_weight, self.fp_p = float(fp_weight), float(fp_p)
        self.fp_stages = None if fp_stages is None else [int(s) for s in fp_stages]
        self.labeller = labeller
        # The partner's labeller is read only with a CutMix branch.
        self.mix_labeller = mix_labeller if mix_branch is not None else None
        self.weak_branch, self.mix_branch = weak_branch, mix_branch
        self.cutmix_p = float(cutmix_p)
        self.cutmix_area = (float(cutmix_area[0]), float(cutmix_area[1]))
        self.cutmix_aspect = (float(cutmix_aspect[0]), float(cutmix_aspect[1]))
        self.photometric = build_photometric(photometric, 'UniMatch(photometric=...)')

    def setup(self, adapter: Adapter) -> None:
        group = ((self.joint_branch,) if self.joint_branch else ()) + (self.weak_branch,)
        joint_fp = self.fp_weight > 0 and self.fp_decode == 'joint'
        if len(group) > 1 or joint_fp:
            adapter.forward_together(
                group, self._perturb if joint_fp else None, owner=self.term_name
            )

    def _perturb(self, features: list[Tensor]) -> list[Tensor]:
        return feature_dropout(features, self.fp_p, self.fp_stages)

    @torch.no_grad()
    def strong_view(self, ctx: StepContext, x: Tensor, valid: Tensor) -> Tensor:
        """A strong view of normalised ``x`` [B, 3, H, W], padding left as it is."""
        return ctx.photometric_view(x, self.photometric, valid, outside='input')

    def _labels(self, ctx: StepContext, branch: str, labeller: str) -> tuple[PseudoLabels, Tensor]:
        pl = ctx.pseudo_labels(branch, labeller)
        x = ctx.inputs(branch)
        if tuple(pl.labels.shape) != (x.shape[0], *x.shape[-2:]):
            raise ValueError(
                f"UniMatch: labeller '{labeller}' gives labels {tuple(pl.labels.shape)} but "
                f"branch '{branch}' is {tuple(x.shape)}; name a per-image labeller "
                '(ConfidenceLabeller).'
            )
        valid = pl.valid
        if valid is None:
            valid = ctx.valid_pixels(branch)
        return pl, valid

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        x = ctx.inputs(self.weak_branch)
        pl, valid = self._labels(ctx, self.weak_branch, self.labeller)
        out: dict[str, Tensor] = {}
        if self.strong_weights:
            partner: Optional[tuple[PseudoLabels, Tensor, Tensor]] = None
            if self.mix_branch is not None:
                xm = ctx.inputs(self.mix_branch)
                if xm.shape != x.shape:
                    raise ValueError(
                        f"UniMatch: CutMix branch '{self.mix_branch}' is {tuple(xm.shape)} but "
                        f"weak branch '{self.weak_branch}' is {tuple(x.shape)}; give both the "
                        'same crop size (one dataset config for both branches).'
                    )
                pm, vm = self._labels(ctx, self.mix_branch, str(self.mix_labeller))
                partner = (pm, vm, xm)
            views, targets = [], []
            B, _, H, W = x.shape
            for _ in self.strong_weights:
                xs = self.strong_view(ctx, x, valid)
                lbl, w, v = pl.labels, pl.weight, valid
                if partner is not None:
                    pm, vm, xm = partner
                    box = cutmix_boxes(
                        B,
                        H,
                        W,
                        self.cutmix_p,
                        self.cutmix_area,
                        self.cutmix_aspect,
                        device=x.device,
                    )
                    # The partner's own strong view is pasted (UniMatch img_u_s1_mix).
                    xs = mix(box, self.strong_view(ctx, xm, vm), xs)
                    lbl, w, v = cutmix_targets(box, pl, valid, pm, vm)
                views.append(xs)
                targets.append((lbl, w, v))
            # One forward for all strong views, as UniMatch's model(cat(img_u_s1, img_u_s2)).
            logits = ctx.student_forward(torch.cat(views))['logits'].chunk(len(views))
            for k, (wk, lg, (lbl, w, v)) in enumerate(zip(self.strong_weights, logits, targets)):
                loss = masked_consistency_loss(lg, lbl, w, v, ctx.ignore_index)
                out[f'loss_s{k + 1}'] = self.weight * wk * loss
        if self.fp_weight > 0:
            fp_logits = ctx.student_perturbed(self.weak_branch)
            if fp_logits is None:  # fp_decode='separate'
                feats = ctx.student(self.weak_branch)['features']
                dropped = feature_dropout(feats, self.fp_p, self.fp_stages)
                fp_logits = ctx.student_decode(dropped, x.shape[-2:])
            loss = masked_consistency_loss(fp_logits, pl.labels, pl.weight, valid, ctx.ignore_index)
            out['loss_fp'] = self.weight * self.fp_weight * loss
        kept = (pl.weight * valid).sum() / valid.sum().clamp(min=1)
        out['mask_ratio'] = kept.detach()
        return out
