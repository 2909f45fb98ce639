"""SAC: self-supervised augmentation consistency (Araslanov & Roth, CVPR 2021).

arXiv:2105.00097, reference code github.com/visinf/da-sac. A momentum teacher predicts on
clean multi-view copies of each target image; its softmax maps are averaged across the views
(test-time augmentation) and thresholded per class with adaptive thresholds; the student is
trained with a confidence-weighted, focal-class-weighted cross-entropy on photometrically noised
copies of the same views. The teacher itself (initialisation, momentum update) is shared
machinery of :class:`uda.methods.Adapter` driven by :class:`uda.engine.EMATeacherHook`; the
views live in :mod:`uda.data.multiview`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from torch import Tensor

from uda.data.multiview import Views, cut_views, fuse_views, photometric_noise, sample_views
from uda.losses import cross_entropy
from uda.methods.base import Adapter, Term
from uda.registry import TERMS


def adaptive_thresholds(probs: Tensor, covered: Tensor, prior: Tensor, lower: float = 0.2,
                        upper: float = 0.75, beta: float = 1e-3) -> Tensor:
    """Per-image, per-class confidence thresholds of SAC.

    ``threshold[b, c] = max(lower, peak[b, c] * upper * (1 - exp(-prior[c] / beta)))`` where
    ``peak[b, c]`` is the highest confidence among the covered pixels of image ``b`` predicted
    as ``c`` (0 when none is). Rare classes (small prior) get a threshold near ``lower``, so
    they are not drowned by frequent, confident classes.

    Args:
        probs: [B, C, H, W] class probabilities.
        covered: [B, H, W] bool, pixels that take part.
        prior: [C] running class prior.

    Returns:
        [B, C] thresholds.
    """
    B, C = probs.shape[:2]
    conf, label = probs.max(1)
    conf = conf * covered.to(conf.dtype)
    peak = conf.new_zeros(B, C).scatter_reduce_(1, label.view(B, -1), conf.view(B, -1),
                                                 reduce='amax', include_self=True)
    discount = 1.0 - torch.exp(-prior.clamp(min=0) / beta)
    return (peak * upper * discount[None]).clamp(min=lower)


def pseudo_labels(probs: Tensor, covered: Tensor, thresholds: Tensor,
                  ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Arg-max labels of ``probs`` [B, C, H, W], ignored where the confidence is not above the
    class threshold ``thresholds`` [B, C] or the pixel is not ``covered``.

    Returns:
        ``labels`` [B, H, W] int64 and ``confidence`` [B, H, W] (the arg-max probability).
    """
    conf, label = probs.max(1)
    thr = thresholds.gather(1, label.flatten(1)).view_as(conf)
    keep = covered & (conf > thr)
    return torch.where(keep, label, torch.full_like(label, ignore_index)), conf


def focal_class_weights(prior: Tensor, power: float = 3.0) -> Tensor:
    """Class weights ``(1 - prior)^power``: frequent classes weigh less."""
    return (1.0 - prior.clamp(0, 1)) ** power


def sac_loss(logits: Tensor, labels: Tensor, confidence: Tensor, prior: Tensor,
             focal_power: float = 3.0, ignore_index: int = 255) -> Tensor:
    """SAC's self-training loss: ``mean(conf * (1 - prior[y])^p * CE(logits, y))`` over all
    pixels, ignored pixels contributing 0 (the reference's ``_focal_ce_conf``).

    Args:
        logits: [B, C, H, W] student scores.
        labels: [B, H, W] pseudo-labels (``ignore_index`` where unreliable).
        confidence: [B, H, W] teacher confidence per pixel.
        prior: [C] running class prior.
    """
    return cross_entropy(logits.float(), labels, class_weight=focal_class_weights(prior,
                         focal_power), pixel_weight=confidence, ignore_index=ignore_index,
                         avg_non_ignore=False)


def freeze_bn(module: nn.Module, mode: str = 'stats') -> None:
    """Freeze the BatchNorm layers of ``module``.

    ``'stats'``: running statistics stay fixed (momentum 0) while forwards still normalise with
    batch statistics, as the network was trained with (ABN); ``'eval'``: BN in eval mode
    (running statistics used and fixed), for networks trained with frozen BN throughout.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if mode == 'eval':
                m.eval()
            elif mode == 'stats':
                m.momentum = 0.0
            else:
                raise ValueError(f"freeze_bn: mode must be 'stats' or 'eval', got {mode!r}.")


@TERMS.register_module()
class SACSelfTraining(Term):
    """Self-training on multi-view target batches with a momentum teacher (SAC).

    Per target image [3, H, W] the term cuts ``num_views`` views [N, 3, H, W] on the device,
    the teacher predicts on the clean views, the predictions are fused across views
    (:func:`uda.data.multiview.fuse_views`), thresholded per image and class
    (:func:`adaptive_thresholds`), and the student is trained on noised views with
    ``weight * mean(conf * (1 - prior)^focal_power * CE)``, averaged over all view pixels.
    Before the teacher is initialised (warm-up, ``Adapter(teacher=dict(start_iter=...))``)
    the term returns nothing. During self-training the student's BatchNorm statistics are
    frozen (the term runs first, ``order=-10``, so the source forward sees frozen BN too).
    A warm start from ABN must not normalise source batches with the target running
    statistics: in ``'stats'`` mode (default) forwards use batch statistics and only the
    running statistics are frozen.

    Args:
        weight: Loss weight (5 for DeepLab-v2 ResNet-101 in the reference).
        branch: Unlabelled target branch ([B, 3, H, W]).
        num_images: Use only the first ``num_images`` target images of the batch (the
            reference takes 2 target images x 4 views beside a larger source batch); all when
            None.
        num_views: Views per target image.
        scale_range: Per-image rescale before the crop (1.0-1.1).
        zoom_range: Relative size of the zoom-in crops of views after the first (0.5-1.0).
        flip_p: Probability of flipping each view.
        blur_sigma: Range of the student views' Gaussian blur (0.1-2 pixels).
        jitter: Brightness/contrast/saturation jitter strength of the student views (0.4).
        hue: Hue jitter (turns) of the colour jitter (0.1).
        jitter_p: Probability of the colour jitter (0.5).
        grey_p: Probability of greyscale (0.2).
        prior_momentum: EMA momentum of the class prior (0.99).
        threshold_lower: Lower bound of the thresholds (0.2; 0.1 for VGG).
        threshold_upper: Fraction of the class peak (0.75).
        threshold_beta: Temperature of the rare-class discount (1e-3).
        focal_power: Exponent of the class weights (3).
        coverage_tolerance: Minimum view count of a fused pixel.
        freeze_student_bn: Freeze the student's BN statistics during self-training:
            ``'stats'`` keeps the running statistics (the ABN target statistics of a warm start)
            fixed while training forwards normalise with batch statistics, as in ABN training;
            ``'eval'`` puts BN in eval mode (for networks trained with frozen BN, as the
            reference's DeepLab-v2); ``None`` leaves BN alone.
        log_per_class: Log the class prior and mean threshold of every class.
    """

    order = -10
    needs_teacher = True

    def __init__(self, weight: float = 1.0, branch: str = 'target',
                 num_images: Optional[int] = None, num_views: int = 4,
                 scale_range: Sequence[float] = (1.0, 1.1),
                 zoom_range: Sequence[float] = (0.5, 1.0), flip_p: float = 0.5,
                 blur_sigma: Sequence[float] = (0.1, 2.0), jitter: float = 0.4,
                 hue: float = 0.1, jitter_p: float = 0.5, grey_p: float = 0.2,
                 prior_momentum: float = 0.99, threshold_lower: float = 0.2,
                 threshold_upper: float = 0.75, threshold_beta: float = 1e-3,
                 focal_power: float = 3.0, coverage_tolerance: float = 0.5,
                 freeze_student_bn: Optional[str] = 'stats',
                 log_per_class: bool = True) -> None:
        super().__init__(weight)
        self.branch = branch
        self.num_images = None if num_images is None else int(num_images)
        self.num_views = int(num_views)
        self.scale_range, self.zoom_range = tuple(scale_range), tuple(zoom_range)
        self.flip_p = flip_p
        self.blur_sigma, self.jitter, self.hue = tuple(blur_sigma), jitter, hue
        self.jitter_p, self.grey_p = jitter_p, grey_p
        self.prior_momentum = prior_momentum
        self.threshold_lower, self.threshold_upper = threshold_lower, threshold_upper
        self.threshold_beta = threshold_beta
        self.focal_power = focal_power
        self.coverage_tolerance = coverage_tolerance
        if freeze_student_bn not in (None, 'stats', 'eval'):
            raise ValueError(f"SACSelfTraining(freeze_student_bn={freeze_student_bn!r}): use "
                             "'stats', 'eval' or None.")
        self.freeze_student_bn = freeze_student_bn
        self.log_per_class = log_per_class
        self._panels: dict[str, Tensor] = {}

    def setup(self, adapter: Adapter) -> None:
        # Running class prior chi_c (saved with checkpoints) and its number of updates.
        self.register_buffer('class_prior', torch.zeros(adapter.num_classes))
        self.register_buffer('prior_updates', torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_prior(self, probs: Tensor, valid: Tensor) -> None:
        """EMA of the teacher's mean class probability ``probs`` [K, C, H, W] over the valid
        pixels ``valid`` [K, 1, H, W]; the first update copies (as the reference re-initialises
        the prior when the teacher starts)."""
        w = valid.to(probs.dtype)
        mean = (probs * w).sum((0, 2, 3)) / w.sum().clamp(min=1.0)
        if int(self.prior_updates) == 0:
            self.class_prior.copy_(mean)
        else:
            self.class_prior.mul_(self.prior_momentum).add_(mean, alpha=1 - self.prior_momentum)
        self.prior_updates += 1

    def make_views(self, adapter: Adapter, x: Tensor, samples: list[dict]
                   ) -> tuple[Views, Tensor, Tensor, Tensor]:
        """Cut clean and noised views of a normalised batch; returns (views, clean, noisy,
        valid [B*N, 1, H, W])."""
        B, _, H, W = x.shape
        hw = torch.tensor([tuple(s.get('img_shape', (H, W)))[:2] for s in samples],
                          device=x.device)
        views = sample_views(hw, (H, W), self.num_views, self.scale_range, self.zoom_range,
                             self.flip_p)
        canvas = torch.zeros(B, 1, H, W, device=x.device, dtype=x.dtype)
        for i, (h, w) in enumerate(hw.tolist()):
            canvas[i, :, :h, :w] = 1
        with torch.no_grad():
            both = cut_views(torch.cat([x, canvas], 1), views)
            clean, valid = both[:, :3], (both[:, 3:] > 0.5).to(x.dtype)
            pre = adapter.data_preprocessor
            mean, std = pre.mean.to(x), pre.std.to(x)
            noisy = photometric_noise((clean * std + mean) / 255.0, self.blur_sigma,
                                      self.jitter, self.hue, self.jitter_p, self.grey_p)
            noisy = (noisy * 255.0 - mean) / std * valid
        return views, clean, noisy, valid

    def forward(self, adapter: Adapter, inputs: dict[str, Tensor],
                data_samples: dict[str, list[dict]]) -> dict[str, Tensor]:
        if self.branch not in inputs:
            raise KeyError(f"SACSelfTraining reads branch '{self.branch}' but the batch has "
                           f'{sorted(inputs)}; set SACSelfTraining(branch=...).')
        if not adapter.self_training:
            it = MessageHub.get_current_instance().get_info('iter')
            start = adapter.teacher_cfg['start_iter']
            if it is not None and it >= start:
                raise RuntimeError(
                    f'SACSelfTraining: iteration {it} >= teacher start_iter {start} but the '
                    "teacher was never initialised. Add dict(type='EMATeacherHook') to "
                    'custom_hooks.')
            return {}  # warm-up: no self-training yet
        if self.freeze_student_bn is not None:
            freeze_bn(adapter.student, self.freeze_student_bn)
        x, samples = inputs[self.branch], data_samples[self.branch]
        if self.num_images is not None:
            x, samples = x[:self.num_images], samples[:self.num_images]
        views, clean, noisy, valid = self.make_views(adapter, x, samples)
        with torch.no_grad():
            probs = adapter.teacher(clean).float().softmax(1) * valid
            self.update_prior(probs, valid)
            fused, covered, _, _ = fuse_views(probs, views, valid, self.coverage_tolerance)
            thr = adaptive_thresholds(fused, covered, self.class_prior, self.threshold_lower,
                                      self.threshold_upper, self.threshold_beta)
            labels, conf = pseudo_labels(fused, covered, thr, adapter.ignore_index)
        logits = adapter.student(noisy)
        loss = sac_loss(logits, labels, conf, self.class_prior, self.focal_power,
                        adapter.ignore_index)
        kept = (labels != adapter.ignore_index).float().sum() / valid.sum().clamp(min=1)
        out = {'tgt.loss_sac': self.weight * loss, 'tgt.pseudo_ratio': kept.detach(),
               'tgt.teacher_conf': (conf * covered).sum().detach() / covered.sum().clamp(min=1)}
        if self.log_per_class:
            mean_thr = thr.mean(0)
            for c in range(thr.shape[1]):
                out[f'tgt.prior_c{c:02d}'] = self.class_prior[c].detach().clone()
                out[f'tgt.thr_c{c:02d}'] = mean_thr[c].detach()
        # Panels of the first view: image, fused teacher prediction, labels, ignored pixels.
        pre = adapter.data_preprocessor
        img = (clean[0] * pre.std.to(x) + pre.mean.to(x)).clamp(0, 255).to(torch.uint8)
        fused_pred = torch.where(covered[0], fused[0].argmax(0),
                                 torch.full_like(labels[0], adapter.ignore_index))
        ignored = (labels[0] == adapter.ignore_index).to(torch.uint8)[None].expand(3, -1, -1)
        noisy_img = (noisy[0] * pre.std.to(x) + pre.mean.to(x)).clamp(0, 255).to(torch.uint8)
        self._panels = {'sac_view': img.detach(), 'sac_student_view': noisy_img.detach(),
                        'sac_teacher_fused': fused_pred.detach(),
                        'sac_pseudo_labels': labels[0].detach(),
                        'sac_ignored': (ignored * 255).detach()}
        return out

    def vis_panels(self) -> dict[str, Tensor]:
        return dict(self._panels)
