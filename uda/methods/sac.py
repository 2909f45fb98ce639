"""SAC: self-supervised augmentation consistency (Araslanov & Roth, CVPR 2021).

arXiv:2105.00097, reference code github.com/visinf/da-sac. A momentum teacher predicts on
clean multi-view copies of each target image; its softmax maps are averaged across the views
(test-time augmentation) and thresholded per class with adaptive thresholds; the student is
trained with a confidence-weighted, focal-class-weighted cross-entropy on photometrically noised
copies of the same views. The teacher (:class:`uda.models.MomentumTeacher`) is shared
machinery driven by :class:`uda.engine.EMATeacherHook`; the pseudo-labels come from the shared
labeller :class:`SACLabeller` (views, fusion, thresholds, class prior), so other terms can
consume the same labels; the student's BN statistics follow the adapter's ``bn_policy``.

Deliberate difference from the reference code: the loss weights each pixel by its own fused
teacher confidence, as the paper writes it; the released code (visinf/da-sac ``models/sac.py``)
broadcasts view-averaged confidences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator, Optional, Sequence

import torch
from torch import Tensor

from uda.augment.photometric import build_photometric
from uda.augment.views import Views, cut_views, fuse_views, sample_views
from uda.losses import sac_loss
from uda.methods.context import StepContext, ViewPseudoLabels
from uda.methods.term import Labeller, Term
from uda.registry import LABELLERS, TERMS
from uda.visualization import image_panel, mask_panel

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter


def adaptive_thresholds(
    probs: Tensor,
    covered: Tensor,
    prior: Tensor,
    lower: float = 0.2,
    upper: float = 0.75,
    beta: float = 1e-3,
) -> Tensor:
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
    peak = conf.new_zeros(B, C).scatter_reduce_(
        1, label.view(B, -1), conf.view(B, -1), reduce='amax', include_self=True
    )
    discount = 1.0 - torch.exp(-prior.clamp(min=0) / beta)
    return (peak * upper * discount[None]).clamp(min=lower)


def pseudo_labels(
    probs: Tensor, covered: Tensor, thresholds: Tensor, ignore_index: int = 255
) -> tuple[Tensor, Tensor]:
    """Arg-max labels of ``probs`` [B, C, H, W], ignored where the confidence is not above the
    class threshold ``thresholds`` [B, C] or the pixel is not ``covered``.

    Returns:
        ``labels`` [B, H, W] int64 and ``confidence`` [B, H, W] (the arg-max probability).
    """
    conf, label = probs.max(1)
    thr = thresholds.gather(1, label.flatten(1)).view_as(conf)
    keep = covered & (conf > thr)
    return torch.where(keep, label, torch.full_like(label, ignore_index)), conf


@LABELLERS.register_module()
class SACLabeller(Labeller):
    """SAC's pseudo-labels: multi-view teacher predictions, fused, class-wise thresholded.

    Per target image [3, H, W] it cuts ``num_views`` views [N, 3, H, W] on the device
    (:func:`uda.augment.views.sample_views`), the teacher predicts on the clean views, the
    predictions are averaged across views in a common frame and warped back
    (:func:`uda.augment.views.fuse_views`), and each image and class gets an adaptive
    threshold (:func:`adaptive_thresholds`) from the running class prior, which this labeller
    keeps (``labellers.<name>.class_prior`` in checkpoints). Reference: visinf/da-sac
    ``models/sac.py`` and ``datasets/tf_target.py``.

    Returns :class:`uda.methods.context.ViewPseudoLabels` with ``labels`` / ``weight`` (the
    fused confidence) per view [B*N, H, W], ``probs`` the fused probabilities, ``valid`` the
    image content [B*N, H, W], ``inputs`` = the clean views [B*N, 3, H, W] (normalised),
    ``views`` (their transforms, :class:`Views`), ``prior`` [C], and as diagnostics in
    ``extras``: ``covered`` [B*N, H, W], ``thresholds`` [B*N, C] and ``view_probs`` (the
    teacher's per-view probabilities before fusion).

    Args:
        num_images: Use only the first ``num_images`` images of the branch (the reference
            takes 2 target images x 4 views beside a larger source batch); all when None.
        num_views: Views per image (4).
        scale_range: Per-image rescale before the crop (1.0-1.1).
        zoom_range: Relative size of the zoom-in crops of views after the first (0.5-1.0).
        flip_p: Probability of flipping each view.
        prior_momentum: EMA momentum of the class prior (0.99).
        threshold_lower: Lower bound of the thresholds (0.2; 0.1 for VGG).
        threshold_upper: Fraction of the class peak (0.75).
        threshold_beta: Temperature of the rare-class discount (1e-3).
        coverage_tolerance: Minimum (bilinear) view count of a fused pixel.
        source: 'teacher' (SAC) or 'student'.
    """

    class_prior: Tensor
    prior_updates: Tensor

    def __init__(
        self,
        num_images: Optional[int] = None,
        num_views: int = 4,
        scale_range: Sequence[float] = (1.0, 1.1),
        zoom_range: Sequence[float] = (0.5, 1.0),
        flip_p: float = 0.5,
        prior_momentum: float = 0.99,
        threshold_lower: float = 0.2,
        threshold_upper: float = 0.75,
        threshold_beta: float = 1e-3,
        coverage_tolerance: float = 0.5,
        source: str = 'teacher',
    ) -> None:
        super().__init__(source)
        self.num_images = None if num_images is None else int(num_images)
        self.num_views = int(num_views)
        self.scale_range, self.zoom_range = tuple(scale_range), tuple(zoom_range)
        self.flip_p = flip_p
        self.prior_momentum = prior_momentum
        self.threshold_lower, self.threshold_upper = threshold_lower, threshold_upper
        self.threshold_beta = threshold_beta
        self.coverage_tolerance = coverage_tolerance

    def setup(self, adapter: Adapter) -> None:
        # Running class prior chi_c (saved with checkpoints) and its number of updates. As in
        # the reference (visinf/da-sac models/sac.py `_momentum_update`), the prior starts at
        # THRESHOLD_BETA for every class.
        self.register_buffer(
            'class_prior', torch.full((adapter.num_classes,), float(self.threshold_beta))
        )
        self.register_buffer('prior_updates', torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_prior(self, probs: Tensor, valid: Tensor, tolerance: float = 1e-8) -> None:
        """EMA of the mean class probability ``probs`` [K, C, H, W] over the valid pixels
        ``valid`` [K, 1, H, W], as visinf/da-sac ``_update_running_conf``: a class still at its
        initial value (``threshold_beta``) whose mean exceeds ``tolerance`` first takes that
        mean, then every class follows the EMA. Deliberate difference: the mean is over image
        pixels only (the reference also averages the teacher's scores on padding)."""
        w = valid.to(probs.dtype)
        mean = (probs * w).sum((0, 2, 3)) / w.sum().clamp(min=1.0)
        new = (mean > tolerance) & (self.class_prior == self.threshold_beta)
        self.class_prior[new] = mean[new]
        self.class_prior.mul_(self.prior_momentum).add_(mean, alpha=1 - self.prior_momentum)
        self.prior_updates += 1

    @torch.no_grad()
    def make_views(self, x: Tensor, samples: list[dict]) -> tuple[Views, Tensor, Tensor]:
        """Cut views of a normalised batch; returns (views, clean views, valid [B*N, 1, H, W])."""
        B, _, H, W = x.shape
        hw = torch.tensor([tuple(s.get('img_shape', (H, W)))[:2] for s in samples], device=x.device)
        views = sample_views(
            hw, (H, W), self.num_views, self.scale_range, self.zoom_range, self.flip_p
        )
        canvas = torch.zeros(B, 1, H, W, device=x.device, dtype=x.dtype)
        for i, (h, w) in enumerate(hw.tolist()):
            canvas[i, :, :h, :w] = 1
        both = cut_views(torch.cat([x, canvas], 1), views)
        return views, both[:, :3], (both[:, 3:] > 0.5).to(x.dtype)

    @torch.no_grad()
    def forward(self, ctx: StepContext, branch: str) -> ViewPseudoLabels:
        x, samples = ctx.inputs(branch), ctx.samples(branch)
        if self.num_images is not None:
            x, samples = x[: self.num_images], samples[: self.num_images]
        views, clean, valid = self.make_views(x, samples)
        probs = self.predict(ctx, clean) * valid
        self.update_prior(probs, valid)
        fused, covered, _, _ = fuse_views(probs, views, valid, self.coverage_tolerance)
        thr = adaptive_thresholds(
            fused,
            covered,
            self.class_prior,
            self.threshold_lower,
            self.threshold_upper,
            self.threshold_beta,
        )
        labels, conf = pseudo_labels(fused, covered, thr, ctx.ignore_index)
        return ViewPseudoLabels(
            labels,
            conf,
            probs=fused,
            valid=valid[:, 0] > 0.5,
            inputs=clean,
            views=views,
            prior=self.class_prior.clone(),
            extras=dict(covered=covered, thresholds=thr, view_probs=probs),
        )


# SAC's student noise (uda.augment.photometric.SAC_NOISE).
SAC_NOISE_VIEW = dict(preset='sac_noise')


@TERMS.register_module()
class SACSelfTraining(Term):
    """Self-training on multi-view target batches with a momentum teacher (SAC).

    The labeller (:class:`SACLabeller`, shared) gives per-view pseudo-labels and the clean
    views; this term noises the views photometrically (per view: Gaussian blur, colour jitter,
    greyscale) and trains the student on them with
    ``weight * mean(conf * (1 - prior)^focal_power * CE)`` over all view pixels. Its labeller reads
    the teacher, so the term starts with it (the teacher's ``start_iter``) unless its config
    says otherwise.

    Args:
        weight: Loss weight (5 for DeepLab-v2 ResNet-101 in the reference).
        branch: Unlabelled target branch ([B, 3, H, W]).
        labeller: Name of the adapter's :class:`SACLabeller`.
        photometric: Noise of the student views, one config dict
            (:func:`uda.augment.photometric.build_photometric`): ``dict(preset='sac_noise')``
            (visinf/da-sac datasets/tf_target.py: blur sigma 0.1-2 px on every view, then
            jitter 0.4 / hue 0.1 with p 0.5, then greyscale p 0.2); keys beside ``preset``
            override it.
        focal_power: Exponent of the class weights (3).
        log_per_class: Log the class prior and mean threshold of every class
            (``prior_cNN``, ``thr_cNN``: TensorBoard only, not the console line).
        views_per_pass: At most this many views per student forward; each chunk but the last
            is yielded to the adapter, which back-propagates it at once, so only one chunk's
            graph is held (memory, issue 16). The loss and its gradient are the same sum;
            BN statistics come from each chunk (uda only: the reference has one pass). None:
            all views in one pass.
        confidence_form: ``'pixel'`` (each pixel its own teacher confidence, the paper) or
            ``'batch_mean'`` (the released code's broadcast, see :func:`sac_loss`).
    """

    labeller_args = {'labeller': dict(type='SACLabeller')}
    console_keys = ('pseudo_ratio',)

    def __init__(
        self,
        weight: float = 1.0,
        branch: str = 'target',
        labeller: str = 'sac',
        photometric: dict = SAC_NOISE_VIEW,
        focal_power: float = 3.0,
        log_per_class: bool = True,
        views_per_pass: Optional[int] = None,
        confidence_form: str = 'pixel',
    ) -> None:
        super().__init__(weight)
        if confidence_form not in ('pixel', 'batch_mean'):
            raise ValueError(
                f"SACSelfTraining(confidence_form={confidence_form!r}): use 'pixel' or "
                "'batch_mean'."
            )
        self.confidence_form = confidence_form
        if views_per_pass is not None and views_per_pass < 1:
            raise ValueError(f'SACSelfTraining: views_per_pass must be >= 1, got {views_per_pass}.')
        self.views_per_pass = views_per_pass
        self.branch, self.labeller = branch, labeller
        photometric_view = build_photometric(photometric, 'SACSelfTraining(photometric=...)')
        if photometric_view is None:
            raise ValueError('SACSelfTraining(photometric=None): SAC noises its student views.')
        self.photometric = photometric_view
        self.focal_power = focal_power
        self.log_per_class = log_per_class
        self._panels: dict[str, Tensor] = {}

    def noise(self, ctx: StepContext, clean: Tensor, valid: Tensor) -> Tensor:
        """Photometric noise of the normalised views (padding stays zero; pixel values are
        not clamped before the noise)."""
        return ctx.photometric_view(clean, self.photometric, valid, clamp=False)

    def forward(self, ctx: StepContext) -> Generator[dict[str, Tensor], None, dict[str, Tensor]]:
        """Yields the loss of each chunk of ``views_per_pass`` views but the last (the adapter
        back-propagates it at once, so one chunk's graph is held), returns the last chunk's
        loss and the diagnostics (see :meth:`Term.forward`)."""
        pl = ctx.pseudo_labels(self.branch, self.labeller)
        if not isinstance(pl, ViewPseudoLabels) or pl.prior is None or 'covered' not in pl.extras:
            raise TypeError(
                f"SACSelfTraining needs an SACLabeller; labeller '{self.labeller}' "
                'gives no views / class prior.'
            )
        assert pl.inputs is not None and pl.valid is not None
        valid, covered, prior = pl.valid, pl.extras['covered'], pl.prior
        noisy = self.noise(ctx, pl.inputs, valid)
        # ``weight * sac_loss`` over all views: the mean over all pixels is the chunks' means
        # weighted by their share of the views.
        n = len(noisy)
        step = self.views_per_pass or n
        for start in range(0, n, step):
            part = slice(start, min(start + step, n))
            logits = ctx.student_forward(noisy[part])['logits']
            loss = sac_loss(
                logits,
                pl.labels[part],
                pl.weight[part],
                prior,
                self.focal_power,
                ctx.ignore_index,
                self.confidence_form,
            )
            loss = self.weight * loss * (len(logits) / n)
            if part.stop < n:
                yield {'loss': loss}
        kept = (pl.labels != ctx.ignore_index).float().sum() / valid.sum().clamp(min=1)
        out = {
            'loss': loss,
            'pseudo_ratio': kept.detach(),
            'teacher_conf': (pl.weight * covered).sum().detach() / covered.sum().clamp(min=1),
        }
        if self.log_per_class:
            mean_thr = pl.extras['thresholds'].mean(0)
            for c in range(mean_thr.shape[0]):
                out[f'prior_c{c:02d}'] = prior[c].detach().clone()
                out[f'thr_c{c:02d}'] = mean_thr[c].detach()
        self._panels = self._make_panels(ctx, pl, noisy)
        return out

    @staticmethod
    def _make_panels(ctx: StepContext, pl: ViewPseudoLabels, noisy: Tensor) -> dict[str, Any]:
        """First view: image, student view, fused teacher prediction, labels, ignored pixels."""

        def rgb(x: Tensor) -> Tensor:
            return image_panel(ctx.denormalize(x[:1])[0])

        assert pl.probs is not None
        covered, fused = pl.extras['covered'][0], pl.probs[0]
        labels = pl.labels[0]
        fused_pred = torch.where(
            covered, fused.argmax(0), torch.full_like(labels, ctx.ignore_index)
        )
        assert pl.inputs is not None
        return {
            'sac_view': rgb(pl.inputs),
            'sac_student_view': rgb(noisy),
            'sac_teacher_fused': fused_pred.detach(),
            'sac_pseudo_labels': labels.detach(),
            'sac_ignored': mask_panel(labels == ctx.ignore_index),
        }

    def vis_panels(self) -> dict[str, Tensor]:
        return dict(self._panels)
