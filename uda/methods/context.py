"""One training step as the terms see it: :class:`StepContext` and what it hands out.

Terms and labellers read the step only through the context: the branches' images, labels and
image labels, cached student and teacher forwards per branch, pseudo-labels computed at most
once per step by a named labeller (:class:`PseudoLabels`), and pixel (de)normalisation. The
adapter (:mod:`uda.methods.adapter`) builds one context per step.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from uda.augment.photometric import photometric_view
from uda.augment.views import Views
from uda.evaluation.inference import aug_inference
from uda.models.batchnorm import frozen_bn_stats

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter


def valid_pixels(samples: list[dict], like: Tensor) -> Tensor:
    """[B, H, W] bool: the image pixels of a batch shaped like ``like`` [B, ..., H, W] (see
    :meth:`StepContext.valid_pixels`)."""
    valid = torch.zeros(like.shape[0], *like.shape[-2:], dtype=torch.bool, device=like.device)
    for i, s in enumerate(samples):
        h, w = tuple(s.get('img_shape', like.shape[-2:]))[:2]
        valid[i, :h, :w] = True
        vm = s.get('valid_mask')  # padding inside the image from the pipeline's crop
        if vm is not None:
            vm = vm.to(valid.device).bool()
            hh, ww = min(vm.shape[0], valid.shape[1]), min(vm.shape[1], valid.shape[2])
            valid[i, :hh, :ww] &= vm[:hh, :ww]
    return valid


def stack_gt(data_samples: list[dict], device: Optional[torch.device] = None) -> Tensor:
    """Stack the (padded) ``gt_sem_seg`` of a branch into [B, H, W] int64."""
    try:
        gts = [s['gt_sem_seg'] for s in data_samples]
    except KeyError:
        raise KeyError(
            'A term needs labels (gt_sem_seg) but this branch has none; give its '
            'dataset labels (with_label=True) or drop the term.'
        ) from None
    gt = torch.stack(gts, 0)
    return gt if device is None else gt.to(device)


@dataclass
class PseudoLabels:
    """What a labeller gives the terms that name it: one typed contract for every labeller.

    ``N`` is the number of images the labels refer to: the branch's batch size ``B`` for
    per-image labellers, or ``B' * V`` views (:class:`ViewPseudoLabels`, SAC).

    Attributes:
        labels: [N, H, W] int64 class ids, ``ignore_index`` where unreliable or padding.
        weight: [N, H, W] float per-pixel loss weight (confidence, mask or DACS quality).
        probs: [N, C, H, W] float32 class probabilities the labels were taken from (after
            fusion for multi-view labellers), or None.
        valid: [N, H, W] bool image pixels (not padding), or None (then terms ask the context,
            :meth:`StepContext.valid_pixels`).
        extras: Diagnostics only (logged or drawn, never needed by a loss): confidences,
            thresholds, masks.
    """

    labels: Tensor
    weight: Tensor
    probs: Optional[Tensor] = None
    valid: Optional[Tensor] = None
    extras: dict[str, Any] = field(default_factory=dict)

    def check(self, who: str) -> None:
        """Raise a clear error when a field breaks its documented shape or type."""
        n_hw = tuple(self.labels.shape)
        problems = []
        if self.labels.dim() != 3 or self.labels.dtype != torch.long:
            problems.append(f'labels {n_hw} {self.labels.dtype} (want [N, H, W] int64)')
        if tuple(self.weight.shape) != n_hw:
            problems.append(f'weight {tuple(self.weight.shape)} (want {n_hw})')
        if self.valid is not None and (
            tuple(self.valid.shape) != n_hw or self.valid.dtype != torch.bool
        ):
            problems.append(f'valid {tuple(self.valid.shape)} {self.valid.dtype} (want bool)')
        if self.probs is not None and (
            self.probs.dim() != 4
            or self.probs.shape[0] != n_hw[0]
            or tuple(self.probs.shape[2:]) != n_hw[1:]
        ):
            problems.append(f'probs {tuple(self.probs.shape)} (want [N, C, H, W])')
        if problems:
            raise ValueError(f'{who} gave PseudoLabels with ' + '; '.join(problems) + '.')


@dataclass
class ViewPseudoLabels(PseudoLabels):
    """Pseudo-labels of views cut from the branch's images (SAC), ``N = B' * V``, image-major.

    Attributes:
        inputs: [N, 3, H, W] the normalised views the labels refer to.
        views: Their transforms (:class:`uda.augment.views.Views`, ``num_views`` = V).
        prior: [C] the labeller's running class prior when the labels were made.
    """

    inputs: Optional[Tensor] = None
    views: Optional[Views] = None
    prior: Optional[Tensor] = None

    def check(self, who: str) -> None:
        super().check(who)
        if self.inputs is None or self.views is None:
            raise ValueError(f'{who} gave ViewPseudoLabels without inputs or views.')
        if self.labels.shape[0] % int(self.views.num_views):
            raise ValueError(
                f'{who} gave {self.labels.shape[0]} view labels, not a multiple of '
                f'{self.views.num_views} views per image.'
            )


@dataclass(frozen=True)
class JointForward:
    """Branches the student forwards as ONE batch (one set of BatchNorm statistics), as
    UniMatch's ``model(torch.cat((img_x, img_u_w)))`` (LiheYoung/UniMatch unimatch.py:151,
    fixmatch.py:146), registered by a term in its ``setup`` (:meth:`Adapter.forward_together`).

    Attributes:
        branches: The branches, concatenated in this order.
        perturb: Optional encoder-feature perturbation: the decoder then runs once on the clean
            and the perturbed features together (UniMatch's ``need_fp`` forward,
            model/semseg/deeplabv3plus.py:44-50), and :meth:`StepContext.student_perturbed`
            returns the perturbed logits.
        owner: Name of the registering term: the group is used only while that term is active.
    """

    branches: tuple[str, ...]
    perturb: Optional[Callable[[list[Tensor]], list[Tensor]]] = None
    owner: str = ''


def _split_output(out: Any, sizes: list[int]) -> list[Any]:
    """Split a forward's outputs (tensors, lists of tensors) along the batch into ``sizes``."""
    n = sum(sizes)
    if isinstance(out, Tensor) and out.dim() > 0 and out.shape[0] == n:
        return list(out.split(sizes))
    if isinstance(out, dict):
        parts = {k: _split_output(v, sizes) for k, v in out.items()}
        return [{k: v[i] for k, v in parts.items()} for i in range(len(sizes))]
    if isinstance(out, (list, tuple)):
        items = [_split_output(v, sizes) for v in out]
        return [[v[i] for v in items] for i in range(len(sizes))]
    return [out for _ in sizes]


class StepContext:
    """One training step as the terms see it.

    Student forwards of a branch are computed once and shared (source CE, adversarial and
    entropy terms all read the same source / target outputs, so BatchNorm sees each batch once);
    teacher forwards and pseudo-labels likewise, so two terms naming one labeller run the
    teacher once. ``counts`` records the forwards run (``student``, ``teacher``) for tests and
    benchmarks.

    Args:
        adapter: The adapter running the step.
        inputs: Normalised images per branch, [B, 3, H, W].
        data_samples: Per branch, one dict per image (``gt_sem_seg``, ``img_shape``, ...).
        iteration: The training iteration (0-based).
    """

    def __init__(
        self,
        adapter: Adapter,
        inputs: dict[str, Tensor],
        data_samples: dict[str, list[dict]],
        iteration: int,
    ) -> None:
        self._adapter = adapter
        self._inputs, self._samples = inputs, data_samples
        self.iter = int(iteration)
        self.num_classes, self.ignore_index = adapter.num_classes, adapter.ignore_index
        self.counts: Counter = Counter()
        self._student: dict[str, dict[str, Any]] = {}
        self._student_fp: dict[str, Tensor] = {}
        self._teacher: dict[tuple[str, str], dict[str, Any]] = {}
        self._pseudo: dict[tuple[str, str], PseudoLabels] = {}

    # ---------------------------------------------------------------- batch
    @property
    def branches(self) -> list[str]:
        return list(self._inputs)

    def _check(self, branch: str) -> None:
        if branch not in self._inputs:
            raise KeyError(
                f"A term reads branch '{branch}' but the batch has {self.branches}; "
                "set the term's branch argument or the dataset's branches."
            )

    def inputs(self, branch: str) -> Tensor:
        """Normalised images [B, 3, H, W] of ``branch``."""
        self._check(branch)
        return self._inputs[branch]

    def samples(self, branch: str) -> list[dict]:
        self._check(branch)
        return self._samples.get(branch) or [{} for _ in range(len(self._inputs[branch]))]

    def labels(self, branch: str) -> Tensor:
        """Pixel labels [B, H, W] int64 (padding and unlabelled pixels = ignore index)."""
        return stack_gt(self.samples(branch), self.inputs(branch).device)

    def valid_pixels(self, branch: str) -> Tensor:
        """[B, H, W] bool: pixels inside each image of ``branch``: not the preprocessor's
        padding, nor the padding of a crop larger than the image (the sample's ``valid_mask``,
        unlabelled images; UniMatch marks it 254 -> ignore 255, LiheYoung/UniMatch
        ``dataset/semi.py``)."""
        return valid_pixels(self.samples(branch), self.inputs(branch))

    def image_labels(self, branch: str) -> Tensor:
        """Image-level multi-hot labels [B, num_classes] float.

        From each sample's ``img_labels`` (class ids) when the dataset gives them, otherwise
        derived from ``gt_sem_seg`` (the classes present).
        """
        samples = self.samples(branch)
        out = torch.zeros(len(samples), self.num_classes, device=self.inputs(branch).device)
        for i, s in enumerate(samples):
            if 'img_labels' in s:
                ids = torch.as_tensor(s['img_labels'], dtype=torch.long).flatten()
            elif 'gt_sem_seg' in s:
                ids = torch.unique(s['gt_sem_seg'])
                ids = ids[(ids != self.ignore_index) & (ids >= 0)]
            else:
                raise KeyError(
                    f"Branch '{branch}' has neither image labels (img_labels) nor "
                    'pixel labels (gt_sem_seg); give its dataset one of them.'
                )
            if len(ids) and (int(ids.max()) >= self.num_classes or int(ids.min()) < 0):
                raise ValueError(
                    f"Branch '{branch}', image {s.get('img_path', i)}: image label "
                    f'{ids.tolist()} outside 0..{self.num_classes - 1}.'
                )
            out[i, ids.to(out.device)] = 1.0
        return out

    # ---------------------------------------------------------------- networks
    def student(self, branch: str) -> dict[str, Any]:
        """Student outputs on ``branch`` (``logits``, ``features``, ``decoder``, and
        ``aux_logits`` when a term needs the auxiliary head), with gradient, cached."""
        out = self._student.get(branch)
        if out is None:
            # With gradient even when a labeller asks first, inside its no_grad (UniMatch's
            # weak forward feeds the pseudo-labels, detached, and the feature perturbation).
            with torch.enable_grad():
                group = self._joint_group(branch)
                if group is not None:
                    self._student_joint(group)
                    return self._student[branch]
                with self._adapter.bn_stats_from(branch):
                    out = self.student_forward(self.inputs(branch))
            self._student[branch] = out
        return out

    def student_perturbed(self, branch: str) -> Optional[Tensor]:
        """Logits [B, C, H, W] of the perturbed features of ``branch``, decoded together with
        the clean ones by a :class:`JointForward` with ``perturb``; None when no active group
        perturbs this branch (the term then decodes its perturbed features itself)."""
        self.student(branch)
        return self._student_fp.get(branch)

    def _joint_group(self, branch: str) -> Optional[JointForward]:
        groups = [g for g in self._adapter.joint_forwards if branch in g.branches]
        if not groups:
            return None
        active = self._adapter.active_terms(self.iter)
        return next((g for g in groups if not g.owner or g.owner in active), None)

    def _student_joint(self, group: JointForward) -> None:
        xs = [self.inputs(b) for b in group.branches]
        if len({tuple(x.shape[1:]) for x in xs}) != 1:
            raise ValueError(
                f'Branches {list(group.branches)} are forwarded as one batch but their images '
                f'differ in size {[tuple(x.shape[1:]) for x in xs]}; give them one crop size.'
            )
        sizes, x = [len(t) for t in xs], torch.cat(xs)
        student = self._adapter.student
        with ExitStack() as stack:
            for b in group.branches:
                stack.enter_context(self._adapter.bn_stats_from(b))
            if group.perturb is None:
                out = self.student_forward(x)
            else:
                if not hasattr(student, 'decode'):
                    raise TypeError(
                        f'{type(student).__name__} has no extract_feat / decode; a joint '
                        'clean + perturbed decode needs uda.models.SMPSegmentor.'
                    )
                self.counts['student'] += 1
                feats = student.extract_feat(x)
                dropped = group.perturb(feats)
                joint: list[Tensor] = [torch.cat((f, d)) for f, d in zip(feats, dropped)]
                tokens = getattr(feats, 'prefix_tokens', None)
                if tokens is not None:  # a ViT's class tokens, for DPT's readout
                    dropped_tokens = getattr(dropped, 'prefix_tokens', None) or tokens
                    joint = type(feats)(joint)
                    joint.prefix_tokens = [  # type: ignore[attr-defined]
                        None if t is None else torch.cat((t, d))
                        for t, d in zip(tokens, dropped_tokens)
                    ]
                both = student.decode(joint, x.shape[-2:])
                logits, fp = both[: len(x)], both[len(x) :]
                out = dict(logits=logits, features=list(feats))
                if self._adapter.want_aux:
                    out['aux_logits'] = student.head('aux', feats, x.shape[-2:])
                self._student_fp.update(zip(group.branches, fp.split(sizes)))
        self._student.update(zip(group.branches, _split_output(out, sizes)))

    def student_forward(self, x: Tensor, update_bn: bool = True) -> dict[str, Any]:
        """Student outputs on any normalised input (e.g. mixed or noised views), not cached.

        ``update_bn=False``: the forward leaves the BatchNorm running statistics (and batch
        counters) as they were, whatever the adapter's ``bn_policy``; BatchNorm still
        normalises with the batch's statistics (VAT's perturbed forwards,
        :func:`uda.models.batchnorm.frozen_bn_stats`).
        """
        self.counts['student'] += 1
        student = self._adapter.student
        with nullcontext() if update_bn else frozen_bn_stats(student):
            return student(x, return_features=True, return_aux=self._adapter.want_aux)

    def student_eval_logits(self, x: Tensor) -> Tensor:
        """Student logits [B, C, H, W] in eval mode without gradient (labels from the model
        itself: UniMatch's ``model.eval()`` predictions of the CutMix partner)."""
        return self._adapter.student_eval_logits(x)

    def student_decode(
        self, features: list[Tensor], size: Optional[Sequence[int]] = None
    ) -> Tensor:
        """Student decoder + segmentation head on (e.g. perturbed) encoder ``features``: logits
        [B, C, h, w], upsampled to ``size`` if given (UniMatch's feature perturbation decodes
        dropped-out features of the weak view's encoder pass; the encoder does not run again)."""
        self.counts['student_decode'] += 1
        student = self._adapter.student
        if not hasattr(student, 'decode'):
            raise TypeError(
                f'{type(student).__name__} has no decode(features, size); feature perturbation '
                'needs a segmentor with extract_feat / decode (uda.models.SMPSegmentor).'
            )
        return student.decode(features, size)

    def teacher(self, branch: str, which: str = 'teacher') -> dict[str, Any]:
        """Teacher outputs (no gradient, eval mode) on ``branch``, cached; ``which`` is
        ``'teacher'`` or a named teacher ``'teachers.<name>'``."""
        out = self._teacher.get((which, branch))
        if out is None:
            out = self.teacher_forward(self.inputs(branch), which)
            self._teacher[(which, branch)] = out
        return out

    def _momentum_teacher(self, which: str) -> Any:
        teachers = self._adapter.momentum_teachers()
        if which not in teachers:
            if which == 'teacher':
                raise RuntimeError(
                    'A term or labeller reads the teacher but the adapter has none; '
                    'give Adapter(teacher=dict(momentum=..., interval=..., '
                    "start_iter=...)) or use source='student'."
                )
            raise RuntimeError(
                f'A term or labeller reads {which!r} but the adapter has {sorted(teachers)}; '
                f'add model.{which}=dict(momentum=..., interval=..., start_iter=...).'
            )
        return teachers[which]

    def teacher_forward(self, x: Tensor, which: str = 'teacher') -> dict[str, Any]:
        """Teacher outputs on any normalised input, not cached."""
        teacher = self._momentum_teacher(which)
        if not bool(teacher.ready):
            raise RuntimeError(
                f'Iteration {self.iter}: {which} was never initialised (its start_iter '
                f'{teacher.start_iter}). default_hooks.teacher (EMATeacherHook, from '
                'configs/_base_/default_runtime.py) initialises it: keep it in the config, or '
                'start the term no earlier than the teacher (its start_iter).'
            )
        self.counts[which] += 1
        return teacher(x, return_features=True)

    def pseudo_labels(self, branch: str, labeller: str) -> PseudoLabels:
        """Pseudo-labels of ``branch`` from the adapter's labeller ``labeller``, computed at
        most once per step however many terms ask."""
        key = (labeller, branch)
        if key not in self._pseudo:
            pl = self._adapter.labeller(labeller)(self, branch)
            pl.check(f"Labeller '{labeller}' on branch '{branch}'")
            self._pseudo[key] = pl
        return self._pseudo[key]

    # ---------------------------------------------------------------- pixels
    def normalize(self, x: Tensor) -> Tensor:
        """Pixel values (0-255) -> network input."""
        return self._adapter.data_preprocessor.normalize(x)

    def denormalize(self, x: Tensor) -> Tensor:
        """Network input -> pixel values (0-255, float)."""
        return self._adapter.data_preprocessor.denormalize(x)

    def photometric_view(
        self,
        x: Tensor,
        augment: Optional[Callable[[Tensor], Tensor]],
        valid: Optional[Tensor] = None,
        outside: str = 'zero',
        clamp: bool = True,
    ) -> Tensor:
        """A photometric (strong) view of normalised images ``x`` [B, 3, H, W] with this
        step's (de)normalisation: :func:`uda.augment.photometric.photometric_view`; ``x``
        itself when ``augment`` is None."""
        if augment is None:
            return x
        return photometric_view(
            x, augment, self.normalize, self.denormalize, valid, outside=outside, clamp=clamp
        )

    def network(self, which: str) -> nn.Module:
        """The ``'student'``, ``'teacher'`` or ``'teachers.<name>'`` network itself (for
        labellers that run it in another way, e.g. CoTTA's frozen copy of the student and its
        augmented passes)."""
        if which == 'teacher' or which.startswith('teachers.'):
            return self._momentum_teacher(which).net
        if which != 'student':
            raise ValueError(
                f"StepContext.network({which!r}): use 'student', 'teacher' or 'teachers.<name>'."
            )
        return self._adapter.student

    def augmented_probs(self, which: str, x: Tensor, scales: Sequence[float], flip: bool) -> Tensor:
        """Softmax of the ``which`` network in eval mode, without gradient, averaged over
        ``scales`` x (flip) (:func:`uda.evaluation.inference.aug_inference`): [B, C, H, W]."""
        net = self.network(which)
        was_training = net.training
        net.eval()
        try:
            divisor = int(getattr(self._adapter.data_preprocessor, 'size_divisor', 1) or 1)
            with torch.no_grad():
                out = aug_inference(net, x, scales, flip, divisor)
        finally:
            net.train(was_training)
        self.counts[f'{which}_aug'] += len(scales) * (2 if flip else 1)
        return out

    def drop_student_cache(self) -> None:
        """Forget cached student forwards (their graphs), between backward groups."""
        self._student = {}


__all__ = [
    'JointForward',
    'PseudoLabels',
    'StepContext',
    'ViewPseudoLabels',
    'stack_gt',
    'valid_pixels',
]
