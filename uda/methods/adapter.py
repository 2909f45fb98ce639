"""The adapter: a method is a composition of named terms (:mod:`uda.methods.term`).

One registered model (:class:`Adapter`) owns the student segmentor, optionally a momentum
teacher and shared pseudo-labellers, and runs the *named* terms of the config
(``terms=dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining'))``). Each training
step builds one :class:`uda.methods.context.StepContext`; terms read the step only through it
(cached student and teacher forwards per branch, labels, image labels, pseudo-labels computed
at most once per step by a named labeller) and return named losses: keys that contain ``loss``
are summed, others are only logged. The Runner's ``IterBasedTrainLoop`` owns the loop and the
adapter owns backward passes and optimiser steps (through the optimiser wrappers), so a term
never calls ``backward()`` or steps an optimiser (the contract of mmdet's ``SemiBaseDetector``,
open-mmlab/mmdetection ``mmdet/models/detectors/semi_base.py``); a term that builds its loss in
parts yields them and the adapter back-propagates each at once
(:meth:`uda.methods.term.Term.forward`).

Adapter settings, not term side effects: the iterations in which each term runs (``start_iter``
/ ``end_iter`` in the term's config), the BatchNorm policy per phase (``bn_policy``), the
optimiser phases (``'student'`` plus every other optimiser name a term declares, e.g.
``'discriminators'``) and optional backward passes per term group (``backward_groups``).
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Generator, Iterator, Optional, Sequence, Union, cast

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from uda.evaluation.inference import check_test_cfg, run_inference
from uda.methods.context import JointForward, StepContext
from uda.methods.term import Labeller, Term, TermOutput, labeller_names
from uda.models.batchnorm import BatchNormPolicy
from uda.models.teacher import MomentumTeacher
from uda.registry import LABELLERS, MODELS, TERMS

Batch = dict[str, Any]
# Averages the gradients of an optimiser wrapper's parameters over data-parallel ranks
# (uda.engine.AdapterDataParallel.sync_gradients).
GradSync = Callable[[OptimWrapper], None]
# Back-propagates a partial loss at once (a training step's student phase).
Backward = Callable[[Tensor], None]
STUDENT = 'student'
LEGACY_KEYS = re.compile(r'^(terms\.\d+\.|teacher_ready$)')


# ---------------------------------------------------------------------- optimiser wrappers
# mmengine's OptimWrapper counts backward calls (``_inner_count``) for gradient accumulation;
# a uda step is one count however many backward passes it takes (term groups, a term's parts,
# optimiser phases). These three functions are the only code that touches the count.


def backward_uncounted(ow: OptimWrapper, loss: Tensor) -> None:
    """``ow.backward`` (loss scaling included) without counting it as a step."""
    ow.backward(ow.scale_loss(loss))
    ow._inner_count -= 1


def will_step(ow: OptimWrapper) -> bool:
    """Whether :func:`count_and_step` of this step will step the optimiser."""
    ow._inner_count += 1
    try:
        return ow.should_update()
    finally:
        ow._inner_count -= 1


def count_and_step(ow: OptimWrapper, grad_sync: Optional[GradSync]) -> None:
    """Count this step's backward passes as one; step when the wrapper's accumulation says so,
    ``grad_sync`` first (DDP averages gradients here, before AMP unscaling, inf checks and
    clipping)."""
    ow._inner_count += 1
    if ow.should_update():
        if grad_sync is not None:
            grad_sync(ow)
        ow.step()
        ow.zero_grad()


def _prefixed(name: str, out: dict[str, Tensor]) -> dict[str, Tensor]:
    """A term's keys under its config name, ``<name>.<key>`` (``sac.loss``,
    ``feat.disc.loss``): the one log-key convention, so terms take no prefix arguments."""
    losses = [k for k in out if 'loss' in k and not k.startswith('disc.')]
    if 'loss' in losses and len(losses) > 1:
        raise KeyError(
            f"Term {name!r} returned 'loss' beside {sorted(set(losses) - {'loss'})}: a term "
            "with several losses names each 'loss_<what>' (the adapter logs their sum as "
            f"'{name}.loss')."
        )
    return {f'{name}.{k}': v for k, v in out.items()}


def _collect(out: TermOutput, backward: Optional[Backward]) -> dict[str, Tensor]:
    """A term's losses; a generator term's yielded parts are back-propagated at once with
    ``backward`` (and enter the sum detached) or, without it, kept with their graphs, and
    added to the returned value of their key (see :meth:`Term.forward`)."""
    if isinstance(out, dict):
        return out
    if not isinstance(out, Generator):
        raise TypeError(
            f'A term returned {type(out).__name__}; return a dict of losses, or yield partial '
            'losses from a generator and return the rest (Term.forward).'
        )
    parts: dict[str, Tensor] = {}
    while True:
        try:
            part: dict[str, Tensor] = next(out)
        except StopIteration as stop:
            final = dict(stop.value or {})
            break
        for key, value in part.items():
            if backward is not None and 'loss' in key and value.requires_grad:
                backward(value)
                value = value.detach()
            parts[key] = parts[key] + value if key in parts else value
    for key, value in parts.items():
        final[key] = value + final[key] if key in final else value
    return final


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
        teachers: Further momentum teachers by name, ``dict(dacs=dict(momentum=0.999, ...))``
            (checkpoint keys ``teachers.<name>.*``): a labeller reads one with
            ``source='teachers.<name>'``, so methods with different EMA settings keep them side
            by side (the full pipeline: SAC's teacher and DACS's). ``EMATeacherHook`` drives
            them all; a term starts with the latest start of the teachers it reads.
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
        teachers: Optional[dict[str, dict]] = None,
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
        # name -> the teachers ('teacher', 'teachers.<name>') a term reads.
        read: dict[str, set[str]] = {}
        for name, term in built.items():
            read[name] = {'teacher'} if term.reads_teacher else set()
            for n in labeller_names(term):
                read[name] |= self._labeller_teachers(n)
            term.needs_teacher = bool(read[name])
        self.want_aux = any(t.needs_aux for t in built.values())
        # Filled by terms' setup (forward_together): branches forwarded as one batch.
        self.joint_forwards: list[JointForward] = []
        for module in [*built.values(), *self.labellers.values()]:
            cast(Union[Term, Labeller], module).setup(self)
        self.test_cfg = check_test_cfg(test_cfg)
        self.teacher: Optional[MomentumTeacher] = None
        wanted = set().union(*read.values(), *(self._labeller_teachers(n) for n in self.labellers))
        if teacher is not None or 'teacher' in wanted:
            self.teacher = self._build_teacher(teacher or {}, 'teacher')
        self.teachers = nn.ModuleDict(
            {n: self._build_teacher(c, f'teachers.{n}') for n, c in (teachers or {}).items()}
        )
        unknown = sorted(wanted - set(self.momentum_teachers()))
        if unknown:
            raise ValueError(
                f'model.labellers read {unknown} but the adapter has teachers '
                f'{sorted(self.momentum_teachers())}; add them as model.teachers=dict('
                '<name>=dict(momentum=..., interval=..., start_iter=...)).'
            )
        self._ddp_params_and_buffers_to_ignore = [
            f'{key}.{n}'
            for key, t in self.momentum_teachers().items()
            for n, _ in [*t.named_parameters(), *t.named_buffers()]
        ]
        # name -> (start_iter, end_iter or None); terms that need teachers start with the
        # latest of them.
        self.phases: dict[str, tuple[int, Optional[int]]] = {}
        starts = {k: t.start_iter for k, t in self.momentum_teachers().items()}
        for name in built:
            start, end = raw[name]
            if start is None:
                start = max([starts[k] for k in read[name]], default=0)
            if end is not None and end <= start:
                raise ValueError(f'model.terms.{name}: end_iter {end} <= start_iter {start}.')
            self.phases[name] = (start, end)
        self.bn_policy = BatchNormPolicy(self.student, bn_policy)
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
        for t in self.momentum_teachers().values():
            t.net.compile(**options)

    def momentum_teachers(self) -> dict[str, MomentumTeacher]:
        """Every momentum teacher by its key: ``'teacher'`` and ``'teachers.<name>'``."""
        out: dict[str, MomentumTeacher] = {}
        if self.teacher is not None:
            out['teacher'] = self.teacher
        for n, t in getattr(self, 'teachers', {}).items():
            out[f'teachers.{n}'] = cast(MomentumTeacher, t)
        return out

    def _build_teacher(self, cfg: dict, where: str) -> MomentumTeacher:
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
                f'model.{where} got unknown keys {sorted(unknown)}; use '
                'dict(momentum=0.99, interval=100, start_iter=0, ramp=False, ramp_offset=0, '
                "bn_mode='eval', share_frozen=True)."
            )
        # DDP: EMATeacherHook updates the teachers identically on every rank; their
        # parameters and buffers stay out of gradient reduction and buffer broadcast
        # (_ddp_params_and_buffers_to_ignore, set in __init__).
        return MomentumTeacher(self.student, **cfg)

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

    def _labeller_teachers(self, name: str, path: tuple[str, ...] = ()) -> set[str]:
        """The teachers labeller ``name`` reads, itself or through labellers it wraps."""
        if name in path:
            raise ValueError(
                f'model.labellers: {" -> ".join((*path, name))} wrap each other in a cycle; '
                'a derived labeller must name another labeller.'
            )
        lab = self.labeller(name)
        own = {lab.teacher_key} if lab.teacher_key is not None else set()
        return own.union(*(self._labeller_teachers(n, (*path, name)) for n in labeller_names(lab)))

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
        return self.bn_policy.mode_at(iteration)

    def train(self, mode: bool = True) -> 'Adapter':
        """Set train/eval mode; the teacher always stays in eval mode (MomentumTeacher)."""
        return super().train(mode)

    # ------------------------------------------------------------------ BN policy
    def bn_stats_from(self, branch: str) -> Any:
        """Context: this forward updates the running statistics when ``branch`` is the one
        the 'target_only' policy follows (every other forward leaves them alone)."""
        return self.bn_policy.stats_from(self.student, branch)

    def _bn_stats_forward(self, ctx: StepContext, iteration: int) -> None:
        """'target_only': a no-grad student forward of the followed branch when no term ran
        one this step (the ABN baseline: target batches only adapt the statistics)."""
        followed = self.bn_policy.followed
        if followed is None or self.bn_policy.stats_done:
            return
        if followed not in ctx.branches:
            raise KeyError(
                f"bn_policy follows branch '{followed}' but the batch has "
                f"{ctx.branches}; set bn_policy=dict(mode='target_only', "
                'branch=...).'
            )
        with torch.no_grad(), self.bn_stats_from(followed):
            self.student(ctx.inputs(followed))

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
        backward: Optional[Backward] = None,
    ) -> dict[str, Tensor]:
        """Run the active terms (all, or ``names``) and collect their losses, each key under
        its term's name (``<name>.<key>``).

        ``backward`` (a training step's student phase) back-propagates the partial losses a
        generator term yields at once; without it they keep their graphs.
        """
        losses: dict[str, Tensor] = {}
        for name, term in self.active_terms(ctx.iter).items():
            if names is not None and name not in names:
                continue
            losses.update(_prefixed(name, _collect(term(ctx), backward)))
        return losses

    def loss(
        self, inputs: dict[str, Tensor], data_samples: dict[str, list[dict]]
    ) -> dict[str, Tensor]:
        """Run every active term on one step's context and collect the named losses."""
        ctx = self.make_context(inputs, data_samples)
        with self.bn_policy.applied(self.student, ctx.iter):
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
    def _backward_phase(
        ow: OptimWrapper, loss: Tensor, grad_sync: Optional[GradSync], last: bool
    ) -> None:
        """:func:`backward_uncounted`; for the phase's ``last`` backward pass, when the wrapper
        then steps and ``grad_sync`` can overlap (``uda.engine.GradientSync.launch_during``),
        the gradient averaging over data-parallel ranks starts during this pass."""
        launch = getattr(grad_sync, 'launch_during', None) if last else None
        if launch is not None and will_step(ow):
            with launch(ow):
                backward_uncounted(ow, loss)
            return
        backward_uncounted(ow, loss)

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
                    losses.update(_prefixed(term_name, term.phase_loss(name, ctx)))
            if not losses:
                continue
            parsed, p_log = self.parse_losses(losses)
            self._check_finite(parsed, losses, ctx.iter)
            self._backward_phase(ow, parsed, grad_sync, last=True)
            count_and_step(ow, grad_sync)
            p_log.pop('loss')
            log_vars.update({k: v.detach() for k, v in p_log.items()})
        return log_vars

    def _student_phase(
        self, ctx: StepContext, ow: OptimWrapper, grad_sync: Optional[GradSync]
    ) -> dict[str, Tensor]:
        groups: list[Optional[list[str]]] = list(self.backward_groups or []) or [None]
        all_losses: dict[str, Tensor] = {}
        backward_done = False

        def backward(loss: Tensor) -> None:
            backward_uncounted(ow, loss)

        with self.bn_policy.applied(self.student, ctx.iter):
            for i, names in enumerate(groups):
                losses = self.run_terms(ctx, names, backward=backward)
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
        count_and_step(ow, grad_sync)
        _, log_vars = self.parse_losses(all_losses)
        return self._with_term_totals(log_vars)

    def _with_term_totals(self, log_vars: dict[str, Tensor]) -> dict[str, Tensor]:
        """``log_vars`` with ``<term>.loss``, the sum of each term's losses, before the
        term's own keys (a term with one loss named ``loss`` has it already)."""
        out = {'loss': log_vars['loss']}
        for name in self.terms:
            own = {k: v for k, v in log_vars.items() if k.startswith(f'{name}.')}
            parts = [v for k, v in own.items() if 'loss' in k]
            if parts and f'{name}.loss' not in own:
                out[f'{name}.loss'] = sum(parts[1:], parts[0])
            out.update(own)
        out.update(log_vars)
        return out

    def console_keys(self) -> list[str]:
        """The scalars of the console line besides learning rate and time: the total loss,
        one loss per term (``<term>.loss``) and at most three diagnostics (the terms'
        ``console_keys``, in term order); everything logged goes to TensorBoard."""
        diagnostics = [f'{n}.{k}' for n, t in self.named_terms().items() for k in t.console_keys]
        return ['loss', *(f'{n}.loss' for n in self.terms), *diagnostics[:3]]

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


__all__ = ['Adapter', 'backward_uncounted', 'count_and_step', 'will_step']
