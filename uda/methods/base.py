"""The adapter, the term interface and the per-step context: a method is a composition of terms.

One registered model (:class:`Adapter`) owns the student segmentor, optionally a momentum
teacher and shared pseudo-labellers, and runs the *named* terms of the config
(``terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining'))``). Each training
step builds one :class:`StepContext`; terms read the step only through it (cached student and
teacher forwards per branch, labels, image labels, pseudo-labels computed at most once per step
by a named labeller) and return named losses: keys that contain ``loss`` are summed, others are
only logged. The Runner's ``IterBasedTrainLoop`` owns the loop and the optimiser wrappers own
backward and steps, so a term never calls ``backward()`` or steps an optimiser (the contract of
mmdet's ``SemiBaseDetector``, open-mmlab/mmdetection ``mmdet/models/detectors/semi_base.py``).

Adapter settings, not term side effects: the iterations in which each term runs (``start_iter``
/ ``end_iter`` in the term's config), the BatchNorm policy per phase (``bn_policy``), the
optimiser phases (``'student'`` plus every other optimiser name a term declares, e.g.
``'discriminators'``) and optional backward passes per term group (``backward_groups``).
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union, cast

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from uda.evaluation.inference import check_test_cfg, run_inference
from uda.models.teacher import MomentumTeacher
from uda.registry import LABELLERS, MODELS, TERMS

Batch = dict[str, Any]
# Averages the gradients of an optimiser wrapper's parameters over data-parallel ranks
# (uda.engine.AdapterDataParallel.sync_gradients).
GradSync = Callable[[OptimWrapper], None]
STUDENT = 'student'
BN_MODES = ('train', 'target_only', 'frozen_stats', 'eval')
LEGACY_KEYS = re.compile(r'^(terms\.\d+\.|teacher_ready$)')


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


def bn_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers of ``module`` that track running statistics."""
    return [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.track_running_stats
        and m.running_mean is not None
    ]


@dataclass
class PseudoLabels:
    """What a labeller gives the terms that name it.

    Attributes:
        labels: [B, H, W] int64 class ids, ``ignore_index`` where unreliable.
        weight: [B, H, W] per-pixel loss weight (confidence, mask or DACS quality).
        inputs: The normalised images the labels refer to when they are not the branch's own
            (SAC: its views, [B*N, 3, H, W]); None otherwise.
        extras: Labeller-specific tensors (probabilities, thresholds, class prior, masks).
    """

    labels: Tensor
    weight: Tensor
    inputs: Optional[Tensor] = None
    extras: dict[str, Any] = field(default_factory=dict)


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
        adapter: 'Adapter',
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
        self._teacher: dict[str, dict[str, Any]] = {}
        self._pseudo: dict[tuple[str, str], PseudoLabels] = {}
        # Set by the adapter's student phase: back-propagate a partial loss at once.
        self._backward_now: Optional[Callable[[Tensor], None]] = None

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
                dropped = group.perturb(list(feats))
                both = student.decode(
                    [torch.cat((f, d)) for f, d in zip(feats, dropped)], x.shape[-2:]
                )
                logits, fp = both[: len(x)], both[len(x) :]
                out = dict(logits=logits, features=list(feats))
                if self._adapter.want_aux:
                    out['aux_logits'] = student.head('aux', feats, x.shape[-2:])
                self._student_fp.update(zip(group.branches, fp.split(sizes)))
        self._student.update(zip(group.branches, _split_output(out, sizes)))

    def student_forward(self, x: Tensor) -> dict[str, Any]:
        """Student outputs on any normalised input (e.g. mixed or noised views), not cached."""
        self.counts['student'] += 1
        return self._adapter.student(x, return_features=True, return_aux=self._adapter.want_aux)

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

    def teacher(self, branch: str) -> dict[str, Any]:
        """Teacher outputs (no gradient, eval mode) on ``branch``, cached."""
        out = self._teacher.get(branch)
        if out is None:
            out = self._teacher[branch] = self.teacher_forward(self.inputs(branch))
        return out

    def teacher_forward(self, x: Tensor) -> dict[str, Any]:
        """Teacher outputs on any normalised input, not cached."""
        teacher = self._adapter.teacher
        if teacher is None:
            raise RuntimeError(
                'A term or labeller reads the teacher but the adapter has none; '
                'give Adapter(teacher=dict(momentum=..., interval=..., '
                "start_iter=...)) or use source='student'."
            )
        if not bool(teacher.ready):
            raise RuntimeError(
                f'Iteration {self.iter}: the teacher was never initialised (teacher start_iter '
                f"{teacher.start_iter}). Add dict(type='EMATeacherHook') to custom_hooks, or "
                'start the term no earlier than the teacher (its start_iter).'
            )
        self.counts['teacher'] += 1
        return teacher(x, return_features=True)

    def pseudo_labels(self, branch: str, labeller: str) -> PseudoLabels:
        """Pseudo-labels of ``branch`` from the adapter's labeller ``labeller``, computed at
        most once per step however many terms ask."""
        key = (labeller, branch)
        if key not in self._pseudo:
            self._pseudo[key] = self._adapter.labeller(labeller)(self, branch)
        return self._pseudo[key]

    # ---------------------------------------------------------------- pixels
    def normalize(self, x: Tensor) -> Tensor:
        """Pixel values (0-255) -> network input."""
        return self._adapter.data_preprocessor.normalize(x)

    def denormalize(self, x: Tensor) -> Tensor:
        """Network input -> pixel values (0-255, float)."""
        return self._adapter.data_preprocessor.denormalize(x)

    def backward_now(self, loss: Tensor) -> bool:
        """Back-propagate a term's partial ``loss`` now, through the student's optimiser
        wrapper, so that its graph is freed before the term builds the next part (e.g. SAC's
        views in chunks). Returns False outside a training step (the caller keeps the graph
        and returns the loss as usual)."""
        if self._backward_now is None or not loss.requires_grad:
            return False
        self._backward_now(loss)
        return True

    def drop_student_cache(self) -> None:
        """Forget cached student forwards (their graphs), between backward groups."""
        self._student = {}


class Term(nn.Module):
    """One ingredient of a method, e.g. source cross-entropy or SAC self-training.

    Subclasses implement :meth:`forward` and return ``{name: tensor}``; keys that contain
    ``loss`` are summed into the objective (name them ``<branch>.loss_<what>``), other keys are
    only logged. The adapter holds terms by config name (``terms.<name>.*`` in checkpoints,
    ``--cfg-options model.terms.<name>.weight=2``) and skips a term outside its
    ``start_iter`` / ``end_iter`` (adapter settings given in the term's config).

    A term may own trainable modules (a discriminator, a classification or projection head):
    :meth:`optimised_modules` declares them by optimiser name. Modules declared under
    ``'student'`` are trained by the student's optimiser and backward pass; any other name
    (``'discriminators'``) gets its own optimiser wrapper and its own phase after the student
    update, whose losses :meth:`phase_loss` returns (on inputs the term cached, detached, in
    :meth:`forward`). :class:`uda.engine.AdapterOptimWrapperConstructor` builds one wrapper per
    declared name.

    Attributes:
        needs_teacher: The adapter must have a momentum teacher for this term; the term starts
            at the teacher's ``start_iter`` unless its config says otherwise.
        needs_aux: Student forwards must also return the auxiliary head's logits (instances
            set it from their arguments).
        term_name: The config name, set by the adapter.
    """

    needs_teacher: bool = False
    needs_aux: bool = False
    term_name: str = ''

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        raise NotImplementedError(f'{type(self).__name__} must implement forward(ctx).')

    def setup(self, adapter: 'Adapter') -> None:
        """Build what depends on the student (a discriminator's input channels, buffers sized
        by ``num_classes``) before the Runner builds optimisers and loads checkpoints."""

    def optimised_modules(self) -> dict[str, nn.Module]:
        """Trainable modules of the term by optimiser name; none by default."""
        return {}

    def phase_loss(self, phase: str, ctx: StepContext) -> dict[str, Tensor]:
        """Losses of the modules declared under ``phase`` (not 'student'), after the student
        step of the same iteration."""
        raise NotImplementedError(
            f'{type(self).__name__} declares optimiser {phase!r} and must implement phase_loss().'
        )

    def vis_panels(self) -> dict[str, Tensor]:
        """Images for TensorBoard from the last call (e.g. pseudo-labels); none by default."""
        return {}


class Labeller(nn.Module):
    """A pseudo-labeller: turns a branch into :class:`PseudoLabels`, once per step.

    Held by the adapter by config name (``labellers=dict(teacher_conf=dict(type=...))``, state
    in checkpoints as ``labellers.<name>.*``) and called through
    :meth:`StepContext.pseudo_labels`.

    Args:
        source: 'teacher' (the momentum teacher), 'student' (the student in eval mode,
            without gradient, as UniMatch's ``model.eval()`` predictions of the CutMix partner)
            or 'student_train' (the student's cached training-mode forward of the branch,
            detached: UniMatch / FixMatch label the weak view with the train-mode predictions
            of the forward that also feeds the feature perturbation, so no extra pass runs;
            LiheYoung/UniMatch ``unimatch.py`` ``pred_u_w.detach()``).
    """

    SOURCES = ('teacher', 'student', 'student_train')

    def __init__(self, source: str = 'teacher') -> None:
        super().__init__()
        if source not in self.SOURCES:
            raise ValueError(
                f'{type(self).__name__}(source={source!r}): use one of {self.SOURCES}.'
            )
        self.source = source

    @property
    def needs_teacher(self) -> bool:
        return self.source == 'teacher'

    def setup(self, adapter: 'Adapter') -> None:
        """Build buffers sized by the student (e.g. a class prior); nothing by default."""

    def predict(self, ctx: StepContext, x: Tensor) -> Tensor:
        """Class probabilities [B, C, H, W] (float32) of the source network on ``x``."""
        if self.source == 'teacher':
            logits = ctx.teacher_forward(x)['logits']
        elif self.source == 'student_train':
            raise ValueError(
                f"{type(self).__name__}(source='student_train') labels a batch branch from its "
                "cached training forward only; use source='student' for other inputs."
            )
        else:
            logits = ctx._adapter.student_eval_logits(x)
        return logits.float().softmax(1)

    def predict_branch(self, ctx: StepContext, branch: str) -> Tensor:
        """Class probabilities [B, C, H, W] (float32, no gradient) on ``branch``; with
        ``source='student_train'`` from the cached training forward
        (:meth:`StepContext.student`)."""
        if self.source == 'student_train':
            # StepContext.student keeps the cached forward's graph although labellers run
            # under no_grad: UniMatch's feature perturbation back-propagates through it.
            return ctx.student(branch)['logits'].detach().float().softmax(1)
        return self.predict(ctx, ctx.inputs(branch))

    def forward(self, ctx: StepContext, branch: str) -> PseudoLabels:
        raise NotImplementedError(f'{type(self).__name__} must implement forward(ctx, branch).')


def _merge(
    losses: dict[str, Tensor], out: dict[str, Tensor], seen: dict[str, Tensor], who: str
) -> None:
    """Add a term's losses to ``losses``; keys already produced this step are an error."""
    clash = set(out) & (set(losses) | set(seen))
    if clash:
        raise KeyError(
            f'Terms produced the same keys {sorted(clash)}; give one of them another '
            f'prefix ({who}).'
        )
    losses.update(out)


def _phase_of(cfg: dict, name: str) -> tuple[dict, Optional[int], Optional[int]]:
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(
            f'model.terms.{name} must be a term config dict(type=..., ...), got {cfg!r}.'
        )
    cfg = dict(cfg)
    start, end = cfg.pop('start_iter', None), cfg.pop('end_iter', None)
    return cfg, (None if start is None else int(start)), (None if end is None else int(end))


@MODELS.register_module()
class Adapter(BaseModel):
    """A segmentor trained by named terms (source CE, self-training, adversarial ...).

    Args:
        segmentor: Config of the student network (e.g. :class:`uda.models.SMPSegmentor`).
        terms: ``dict(name=term config)``, run in this order. Each config may carry
            ``start_iter`` / ``end_iter``: the term runs for ``start_iter <= iter < end_iter``
            (terms that need the teacher start with it by default).
        data_preprocessor: Config of the preprocessor (normalise, pad, stack per branch).
        num_classes: Classes of the label space; read from the segmentor when omitted.
        ignore_index: Label value of unlabelled pixels.
        test_cfg: Inference settings, see :func:`uda.evaluation.inference.check_test_cfg`.
        teacher: Momentum teacher settings (:class:`uda.models.MomentumTeacher`:
            ``dict(momentum=0.99, interval=100, start_iter=0, ramp=False)``); built when given
            or when a term or labeller needs one. ``EMATeacherHook`` drives it.
        labellers: ``dict(name=labeller config)`` shared by the terms that name them.
        bn_policy: BatchNorm of the student during training steps, one mode or a list of
            ``dict(mode=..., start_iter=N[, branch='target'])`` phases. Modes: ``'train'``
            (every forward updates the running statistics); ``'target_only'`` (adaptive BN:
            forwards normalise with batch statistics but only the student forward of
            ``branch`` updates the running ones; if no term forwards that branch, the adapter
            does, without gradient); ``'frozen_stats'`` (running statistics fixed, batch
            statistics in forwards); ``'eval'`` (BN in eval mode: running statistics used and
            fixed, as the reference DeepLab-v2 trains).
        backward_groups: None for one backward pass per step, or a list of lists of term
            names: each group's losses are back-propagated before the next group runs, so only
            one group's graph is alive at a time (peak memory). Terms that share a branch's
            student forward belong in one group (the cache is dropped between groups).
        channels_last: Store the 4-D weights of the student, teacher and term modules in
            ``torch.channels_last`` (NHWC) memory format, so convolutions run NHWC kernels.
            Off by default: measured in docs/speed_and_scale.md.
        torch_compile: ``torch.compile`` the student's and the teacher's networks
            (``nn.Module.compile``: parameter names and checkpoints unchanged); True or a dict
            of ``torch.compile`` arguments (``dict(mode='max-autotune')``). Off by default.
    """

    def __init__(
        self,
        segmentor: dict,
        terms: dict[str, dict],
        data_preprocessor: Optional[dict] = None,
        num_classes: Optional[int] = None,
        ignore_index: int = 255,
        test_cfg: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
        teacher: Optional[dict] = None,
        labellers: Optional[dict[str, dict]] = None,
        bn_policy: Union[str, dict, list] = 'train',
        backward_groups: Optional[list[list[str]]] = None,
        channels_last: bool = False,
        torch_compile: Union[bool, dict] = False,
    ) -> None:
        # Built here (not by BaseModel) so it resolves in uda's registry outside a Runner too.
        preprocessor = MODELS.build(data_preprocessor or dict(type='SegDataPreprocessor'))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(segmentor)
        if not isinstance(terms, dict):
            raise TypeError(
                'Adapter(terms=...) takes named terms: terms=dict(src=dict(type='
                "'SourceCE'), sac=dict(type='SACSelfTraining', ...)); got "
                f'{type(terms).__name__}. Configs merge and --cfg-options address '
                'terms by these names (model.terms.sac.weight=2).'
            )
        if not terms:
            raise ValueError(
                "Adapter needs at least one term, e.g. terms=dict(src=dict(type='SourceCE'))."
            )
        self.num_classes = int(num_classes or self.student.num_classes)
        self.ignore_index = ignore_index
        built: dict[str, Term] = {}
        raw: dict[str, tuple[Optional[int], Optional[int]]] = {}
        for name, cfg in terms.items():
            cfg, start, end = _phase_of(cfg, name)
            built[name] = TERMS.build(cfg)
            built[name].term_name = name
            raw[name] = (start, end)
        self.terms = nn.ModuleDict(built)
        self.labellers = nn.ModuleDict(
            {n: LABELLERS.build(c) for n, c in (labellers or {}).items()}
        )
        self.want_aux = any(t.needs_aux for t in built.values())
        # Filled by terms' setup (forward_together): branches forwarded as one batch.
        self.joint_forwards: list[JointForward] = []
        for module in [*built.values(), *self.labellers.values()]:
            cast(Union[Term, Labeller], module).setup(self)
        self.test_cfg = check_test_cfg(test_cfg)
        self.teacher: Optional[MomentumTeacher] = None
        needs = [n for n, t in built.items() if t.needs_teacher] + [
            n for n, lab in self.labellers.items() if cast(Labeller, lab).needs_teacher
        ]
        if teacher is not None or needs:
            self._build_teacher(teacher or {})
        teacher_start = self.teacher.start_iter if self.teacher is not None else 0
        # name -> (start_iter, end_iter or None); terms that need the teacher start with it.
        self.phases: dict[str, tuple[int, Optional[int]]] = {}
        for name, term in built.items():
            start, end = raw[name]
            if start is None:
                start = teacher_start if term.needs_teacher else 0
            if end is not None and end <= start:
                raise ValueError(f'model.terms.{name}: end_iter {end} <= start_iter {start}.')
            self.phases[name] = (start, end)
        self.bn_policy = self._check_bn_policy(bn_policy)
        bns = set(bn_layers(self.student))
        self._bn_momentum_of = {n: m.momentum for n, m in self.student.named_modules() if m in bns}
        self._bn_branch: Optional[str] = None  # set while a 'target_only' step runs
        self._bn_stats_done = False
        self.backward_groups = self._check_groups(backward_groups)
        self._register_load_state_dict_pre_hook(self._reject_legacy_keys)
        self._apply_speed_options(channels_last, torch_compile)

    # ------------------------------------------------------------------ construction
    def _apply_speed_options(self, channels_last: bool, torch_compile: Union[bool, dict]) -> None:
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # Copies into the destination's format keep it (EMA, checkpoint loading).
            self.to(memory_format=torch.channels_last)
        if torch_compile is False or torch_compile is None:
            return
        if torch_compile is not True and not isinstance(torch_compile, dict):
            raise TypeError(
                f'Adapter(torch_compile={torch_compile!r}): use True or a dict of '
                "torch.compile arguments, e.g. dict(mode='max-autotune')."
            )
        options = {} if torch_compile is True else dict(torch_compile)
        self.student.compile(**options)
        if self.teacher is not None:
            self.teacher.net.compile(**options)

    def _build_teacher(self, cfg: dict) -> None:
        unknown = set(cfg) - {
            'momentum',
            'interval',
            'start_iter',
            'ramp',
            'ramp_offset',
            'bn_mode',
            'share_frozen',
        }
        if unknown:
            raise KeyError(
                f'Adapter(teacher=...) got unknown keys {sorted(unknown)}; use '
                'dict(momentum=0.99, interval=100, start_iter=0, ramp=False, ramp_offset=0, '
                "bn_mode='eval', share_frozen=True)."
            )
        self.teacher = MomentumTeacher(self.student, **cfg)
        # DDP: EMATeacherHook updates the teacher identically on every rank; keep its
        # parameters and buffers out of gradient reduction and buffer broadcast.
        self._ddp_params_and_buffers_to_ignore = [
            f'teacher.{n}' for n, _ in self.teacher.named_parameters()
        ] + [f'teacher.{n}' for n, _ in self.teacher.named_buffers()]

    def _check_bn_policy(self, policy: Union[str, dict, list]) -> list[dict]:
        phases = policy if isinstance(policy, (list, tuple)) else [policy]
        out = []
        for p in phases:
            p = dict(mode=p) if isinstance(p, str) else dict(p)
            unknown = set(p) - {'mode', 'start_iter', 'branch'}
            if unknown or p.get('mode') not in BN_MODES:
                raise ValueError(
                    f'model.bn_policy entry {p}: use a mode in {BN_MODES} or '
                    "dict(mode=..., start_iter=N, branch='target')."
                )
            out.append(
                dict(
                    mode=p['mode'],
                    start_iter=int(p.get('start_iter', 0)),
                    branch=p.get('branch', 'target'),
                )
            )
        return sorted(out, key=lambda p: p['start_iter'])

    def _check_groups(self, groups: Optional[list[list[str]]]) -> Optional[list[list[str]]]:
        if groups is None:
            return None
        flat = [n for g in groups for n in g]
        unknown = sorted(set(flat) - set(self.terms))
        missing = sorted(set(self.terms) - set(flat))
        dup = sorted(n for n, c in Counter(flat).items() if c > 1)
        if unknown or missing or dup:
            raise ValueError(
                f'model.backward_groups must list every term once: unknown '
                f'{unknown}, missing {missing}, repeated {dup} (terms: '
                f'{list(self.terms)}).'
            )
        return [list(g) for g in groups]

    @staticmethod
    def _reject_legacy_keys(state_dict: dict, prefix: str, *args: Any) -> None:
        old = [k for k in state_dict if LEGACY_KEYS.match(k[len(prefix) :])]
        if old:
            raise KeyError(
                f'This checkpoint has the old positional layout ({old[:3]} ...): terms are now '
                "held by name (terms.<name>.*), SAC's class prior by its labeller "
                '(labellers.<name>.*) and the teacher as teacher.net.* / teacher.ready. Convert '
                'it once with: python tools/upgrade_checkpoint.py CONFIG OLD.pth NEW.pth '
                '(uda.engine.checkpoint.upgrade_state_dict documents the key mapping).'
            )

    # ------------------------------------------------------------------ accessors
    def labeller(self, name: str) -> Labeller:
        if name not in self.labellers:
            raise KeyError(
                f"A term names labeller '{name}' but the adapter has "
                f'{list(self.labellers)}; add model.labellers.{name}=dict(type=...).'
            )
        return cast(Labeller, self.labellers[name])

    def named_terms(self) -> dict[str, Term]:
        """The terms by name, in run order."""
        return {n: cast(Term, t) for n, t in self.terms.items()}

    def active_terms(self, iteration: int) -> dict[str, Term]:
        """The terms that run at ``iteration`` (their ``start_iter <= iter < end_iter``)."""
        out = {}
        for name, term in self.named_terms().items():
            start, end = self.phases[name]
            if iteration >= start and (end is None or iteration < end):
                out[name] = term
        return out

    def forward_together(
        self,
        branches: Sequence[str],
        perturb: Optional[Callable[[list[Tensor]], list[Tensor]]] = None,
        owner: str = '',
    ) -> None:
        """Have the student forward ``branches`` as one batch (see :class:`JointForward`)."""
        branches = tuple(branches)
        taken = {b for g in self.joint_forwards for b in g.branches} & set(branches)
        if taken or len(set(branches)) != len(branches):
            raise ValueError(
                f'forward_together({list(branches)}): branches {sorted(taken)} are already in '
                'another joint forward, or repeated; a branch joins one group at most.'
            )
        self.joint_forwards.append(JointForward(branches, perturb, owner))

    def bn_mode(self, iteration: int) -> dict:
        """The BN policy entry in force at ``iteration``."""
        current = dict(mode='train', start_iter=0, branch='target')
        for p in self.bn_policy:
            if iteration >= p['start_iter']:
                current = p
        return current

    def train(self, mode: bool = True) -> 'Adapter':
        """Set train/eval mode; the teacher always stays in eval mode (MomentumTeacher)."""
        return super().train(mode)

    # ------------------------------------------------------------------ BN policy
    @property
    def _bn_momentum(self) -> dict[nn.modules.batchnorm._BatchNorm, Optional[float]]:
        """The student's BatchNorm layers -> their configured momentum, looked up by name each
        time: the Runner's ``sync_bn='torch'`` replaces the layers after the adapter is built."""
        modules = dict(self.student.named_modules())
        return {
            cast(nn.modules.batchnorm._BatchNorm, modules[n]): mom
            for n, mom in self._bn_momentum_of.items()
            if n in modules
        }

    def _set_bn_momentum(self, frozen: bool) -> None:
        for m, momentum in self._bn_momentum.items():
            m.momentum = 0.0 if frozen else momentum

    @contextmanager
    def bn_stats_from(self, branch: str) -> Iterator[None]:
        """Let this forward update the running statistics when ``branch`` is the one the
        'target_only' policy follows (every other forward leaves them alone)."""
        if self._bn_branch is None or branch != self._bn_branch:
            yield
            return
        self._set_bn_momentum(frozen=False)
        try:
            yield
        finally:
            self._set_bn_momentum(frozen=True)
            self._bn_stats_done = True

    @contextmanager
    def _bn_policy_applied(self, iteration: int) -> Iterator[None]:
        policy = self.bn_mode(iteration)
        mode = policy['mode']
        bns = list(self._bn_momentum)
        was_training = [m.training for m in bns]
        if mode in ('target_only', 'frozen_stats'):
            self._set_bn_momentum(frozen=True)
        if mode == 'target_only':
            self._bn_branch, self._bn_stats_done = policy['branch'], False
        if mode == 'eval':
            for m in bns:
                m.eval()
        try:
            yield
        finally:
            self._bn_branch = None
            self._set_bn_momentum(frozen=False)
            for m, t in zip(bns, was_training):
                m.train(t)

    def _bn_stats_forward(self, ctx: StepContext, iteration: int) -> None:
        """'target_only': a no-grad student forward of the followed branch when no term ran
        one this step (the ABN baseline: target batches only adapt the statistics)."""
        if self._bn_branch is None or self._bn_stats_done:
            return
        if self._bn_branch not in ctx.branches:
            raise KeyError(
                f"bn_policy follows branch '{self._bn_branch}' but the batch has "
                f"{ctx.branches}; set bn_policy=dict(mode='target_only', "
                'branch=...).'
            )
        with torch.no_grad(), self.bn_stats_from(self._bn_branch):
            self.student(ctx.inputs(self._bn_branch))

    def student_eval_logits(self, x: Tensor) -> Tensor:
        """Student logits in eval mode without gradient (labels from the model itself)."""
        was_training = self.student.training
        self.student.eval()
        try:
            with torch.no_grad():
                return self.student(x)
        finally:
            self.student.train(was_training)

    # ------------------------------------------------------------------ training
    def forward(self, inputs: Any, data_samples: Any = None, mode: str = 'tensor') -> Any:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs)
        raise ValueError(
            f"Adapter.forward: unknown mode {mode!r}; use 'loss', 'predict' or 'tensor'."
        )

    @staticmethod
    def _iteration() -> int:
        it = MessageHub.get_current_instance().get_info('iter')
        return int(it) if it is not None else 0

    def make_context(
        self,
        inputs: dict[str, Tensor],
        data_samples: dict[str, list[dict]],
        iteration: Optional[int] = None,
    ) -> StepContext:
        if not isinstance(inputs, dict):
            raise TypeError(
                'Training batches must be dicts of branches, e.g. {"source": ..., '
                '"target": ...}: wrap the train dataset in MultiBranchDataset.'
            )
        return StepContext(
            self, inputs, data_samples, self._iteration() if iteration is None else iteration
        )

    def run_terms(
        self,
        ctx: StepContext,
        names: Optional[list[str]] = None,
        into: Optional[dict[str, Tensor]] = None,
    ) -> dict[str, Tensor]:
        """Run the active terms (all, or ``names``) and collect their losses."""
        losses: dict[str, Tensor] = {}
        seen = into if into is not None else {}
        for name, term in self.active_terms(ctx.iter).items():
            if names is not None and name not in names:
                continue
            _merge(losses, term(ctx), seen, f'term {name!r}')
        return losses

    def loss(
        self, inputs: dict[str, Tensor], data_samples: dict[str, list[dict]]
    ) -> dict[str, Tensor]:
        """Run every active term on one step's context and collect the named losses."""
        ctx = self.make_context(inputs, data_samples)
        with self._bn_policy_applied(ctx.iter):
            losses = self.run_terms(ctx)
            self._bn_stats_forward(ctx, ctx.iter)
        return losses

    def _check_finite(self, parsed: Tensor, losses: dict[str, Tensor], iteration: int) -> None:
        if not torch.isfinite(parsed):
            bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
            raise FloatingPointError(
                f'Loss became {parsed.item()} at iteration {iteration} (non-finite: {bad}). '
                'Lower the learning rate, enable optim_wrapper.clip_grad, or check the data.'
            )

    def declared_optimisers(self) -> dict[str, list[tuple[str, nn.Module]]]:
        """Optimiser name -> [(``terms.<name>.<attr>``-style prefix, module)] declared by the
        terms, 'student' first (its modules join the student's optimiser)."""
        out: dict[str, list[tuple[str, nn.Module]]] = {STUDENT: []}
        for name, term in self.named_terms().items():
            for opt, module in term.optimised_modules().items():
                prefix = next(
                    (f'terms.{name}.{n}' for n, m in term.named_children() if m is module),
                    f'terms.{name}',
                )
                out.setdefault(opt, []).append((prefix, module))
        return out

    @contextmanager
    def _frozen(self, modules: list[nn.Module]) -> Iterator[None]:
        """Parameters of later phases take no gradient in the student phase."""
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    @staticmethod
    def _backward(ow: OptimWrapper, loss: Tensor) -> None:
        """Backward without counting it as a step: mmengine counts backward calls for
        gradient accumulation, and one step is one count however many backward passes (term
        groups) it takes (:meth:`_student_phase` counts once)."""
        ow.backward(ow.scale_loss(loss))
        ow._inner_count -= 1

    def _backward_phase(
        self, ow: OptimWrapper, loss: Tensor, grad_sync: Optional[GradSync], last: bool
    ) -> None:
        """:meth:`_backward`; for the phase's ``last`` backward pass, when the wrapper then
        steps and ``grad_sync`` can overlap (``uda.engine.GradientSync.launch_during``), the
        gradient averaging over data-parallel ranks starts during this pass."""
        launch = getattr(grad_sync, 'launch_during', None) if last else None
        if launch is not None:
            ow._inner_count += 1  # the count this step will have
            steps = ow.should_update()
            ow._inner_count -= 1
            if steps:
                with launch(ow):
                    self._backward(ow, loss)
                return
        self._backward(ow, loss)

    @staticmethod
    def _step(ow: OptimWrapper, grad_sync: Optional[GradSync]) -> None:
        """Step when the wrapper's accumulation says so; ``grad_sync`` first (DDP averages
        gradients here, before AMP unscaling, inf checks and clipping)."""
        if ow.should_update():
            if grad_sync is not None:
                grad_sync(ow)
            ow.step()
            ow.zero_grad()

    def train_step(
        self, data: Batch, optim_wrapper: OptimWrapper, grad_sync: Optional[GradSync] = None
    ) -> dict[str, Tensor]:
        """Preprocess, run the terms, back-propagate, step the optimiser phases.

        1. Student phase: every active term's losses (modules of later phases frozen), one
           backward pass (or one per ``backward_groups`` entry), ``optim_wrapper['student']``
           steps the student and the modules terms declared under 'student'.
        2. One phase per other declared optimiser name (e.g. 'discriminators'): the losses
           of :meth:`Term.phase_loss` on the inputs the terms cached, that wrapper steps.

        Args:
            data: The collated batch (a dict of branches).
            optim_wrapper: One ``OptimWrapper`` (no term declares other optimisers), or the
                ``OptimWrapperDict`` of :class:`uda.engine.AdapterOptimWrapperConstructor`.
            grad_sync: Called with each wrapper between its backward pass and its step, only
                when it steps (:class:`uda.engine.AdapterDataParallel`).
        """
        declared = self.declared_optimisers()
        phases = [n for n in declared if n != STUDENT]
        if isinstance(optim_wrapper, OptimWrapperDict):
            have = set(optim_wrapper.keys())
            missing = [n for n in [STUDENT, *phases] if n not in have]
            if missing:
                raise KeyError(
                    f'optim_wrapper has {sorted(have)} but the terms need '
                    f'{missing}: build it with AdapterOptimWrapperConstructor and '
                    f"give {missing[0]}=dict(type='OptimWrapper', optimizer=...)."
                )
            student_ow = optim_wrapper[STUDENT]
        else:
            extra = [n for n, mods in declared.items() if mods]
            if extra:
                owners = [n for n, t in self.named_terms().items() if t.optimised_modules()]
                raise TypeError(
                    f'Terms {owners} own trainable modules for optimisers {extra}: set '
                    "optim_wrapper=dict(constructor='AdapterOptimWrapperConstructor', "
                    "student=dict(type='OptimWrapper', optimizer=...), "
                    + ', '.join(
                        f"{n}=dict(type='OptimWrapper', optimizer=...)"
                        for n in extra
                        if n != STUDENT
                    )
                    + ').'
                )
            student_ow = optim_wrapper
        later = [m for n in phases for _, m in declared[n]]
        with student_ow.optim_context(self), self._frozen(later):
            data = self.data_preprocessor(data, True)
            ctx = self.make_context(data['inputs'], data['data_samples'])
            log_vars = self._student_phase(ctx, student_ow, grad_sync)
        for name in phases:
            ow = optim_wrapper[name]
            losses: dict[str, Tensor] = {}
            with ow.optim_context(self):
                for term_name, term in self.active_terms(ctx.iter).items():
                    if name not in term.optimised_modules():
                        continue
                    _merge(
                        losses,
                        term.phase_loss(name, ctx),
                        log_vars,
                        f'term {term_name!r}, phase {name!r}',
                    )
            if not losses:
                continue
            parsed, p_log = self.parse_losses(losses)
            self._check_finite(parsed, losses, ctx.iter)
            self._backward_phase(ow, parsed, grad_sync, last=True)
            ow._inner_count += 1
            self._step(ow, grad_sync)
            p_log.pop('loss')
            log_vars.update({k: v.detach() for k, v in p_log.items()})
        return log_vars

    def _student_phase(
        self, ctx: StepContext, ow: OptimWrapper, grad_sync: Optional[GradSync]
    ) -> dict[str, Tensor]:
        groups: list[Optional[list[str]]] = list(self.backward_groups or []) or [None]
        all_losses: dict[str, Tensor] = {}
        backward_done = False
        ctx._backward_now = lambda loss: self._backward(ow, loss)
        with self._bn_policy_applied(ctx.iter):
            for i, names in enumerate(groups):
                losses = self.run_terms(ctx, names, into=all_losses)
                if i == len(groups) - 1:
                    self._bn_stats_forward(ctx, ctx.iter)
                if losses:
                    parsed, _ = self.parse_losses(losses)
                    self._check_finite(parsed, losses, ctx.iter)
                    if parsed.requires_grad:
                        self._backward_phase(ow, parsed, grad_sync, last=i == len(groups) - 1)
                        backward_done = True
                all_losses.update({k: v.detach() for k, v in losses.items()})
                if i < len(groups) - 1:
                    ctx.drop_student_cache()  # this group's graph is freed
        if not backward_done:
            raise RuntimeError(
                f'Iteration {ctx.iter}: no term produced a loss with gradient '
                f'(active terms: {list(self.active_terms(ctx.iter))}); check '
                "the terms' start_iter / end_iter."
            )
        ow._inner_count += 1
        self._step(ow, grad_sync)
        _, log_vars = self.parse_losses(all_losses)
        return log_vars

    # ------------------------------------------------------------------ inference
    def segmentor_for(self, which: str = 'student') -> nn.Module:
        """The network used for inference: ``'student'`` or (with a teacher) ``'teacher'``."""
        if which == 'teacher' and self.teacher is not None:
            return self.teacher.net
        if which != 'student':
            have = ['student'] + (['teacher'] if self.teacher is not None else [])
            raise ValueError(f"No '{which}' network in this model; it has {have}.")
        return self.student

    @torch.no_grad()
    def inference(self, inputs: Tensor, which: Optional[str] = None) -> Tensor:
        """Scores [B, C, H, W] on a normalised batch, in the mode of ``test_cfg``.

        Logits for 'whole' and 'slide', mean softmax probabilities for 'aug'; the argmax is the
        prediction in every mode. ``which`` overrides ``test_cfg.which``.
        """
        net = self.segmentor_for(which or self.test_cfg['which'])
        divisor = int(getattr(self.data_preprocessor, 'size_divisor', 1) or 1)
        return run_inference(net, inputs, self.test_cfg, divisor)

    def predict(
        self, inputs: Tensor, data_samples: Optional[list[dict]] = None
    ) -> list[dict[str, Any]]:
        """Predict each image, cropped back from padding to its own size.

        Returns:
            One dict per image with ``pred_sem_seg`` (int64 [H, W]), ``gt_sem_seg`` when the
            sample had labels, and the sample's meta information.
        """
        logits = self.inference(inputs)
        data_samples = data_samples or [
            dict(img_shape=tuple(inputs.shape[-2:])) for _ in range(len(inputs))
        ]
        results = []
        for i, sample in enumerate(data_samples):
            h, w = sample.get('img_shape', inputs.shape[-2:])
            out = {k: v for k, v in sample.items() if k != 'gt_sem_seg'}
            out['pred_sem_seg'] = logits[i, :, :h, :w].argmax(0)
            if 'gt_sem_seg' in sample:
                out['gt_sem_seg'] = sample['gt_sem_seg'][:h, :w]
            results.append(out)
        return results


__all__ = ['Adapter', 'Labeller', 'PseudoLabels', 'StepContext', 'Term', 'bn_layers', 'stack_gt']
