"""The two kinds of method ingredients: :class:`Term` (a loss on the step) and
:class:`Labeller` (pseudo-labels shared by the terms that name it).

Both read the step only through :class:`uda.methods.context.StepContext`; the adapter
(:mod:`uda.methods.adapter`) holds them by config name, schedules terms and owns backward
passes and optimiser steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generator, Optional, Union

import torch.nn as nn
from torch import Tensor

from uda.methods.context import PseudoLabels, StepContext

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter

# What Term.forward returns: the losses, or a generator that yields partial losses for the
# adapter to back-propagate at once (their graphs freed before the next part is built) and
# returns the rest (see Term.forward).
TermOutput = Union[dict[str, Tensor], Generator[dict[str, Tensor], None, dict[str, Tensor]]]


def labeller_names(owner: Union[Term, Labeller]) -> list[str]:
    """The labeller names ``owner`` (a term or a derived labeller) holds in its declared
    ``labeller_args`` (each kept as the attribute of the same name; None: not used)."""
    names = []
    for arg in type(owner).labeller_args:
        if not hasattr(owner, arg):
            raise TypeError(
                f'{type(owner).__name__} declares labeller argument {arg!r} in labeller_args but '
                f'keeps no attribute of that name; store it as self.{arg}.'
            )
        name = getattr(owner, arg)
        if name is not None:
            names.append(str(name))
    return names


class Term(nn.Module):
    """One ingredient of a method, e.g. source cross-entropy or SAC self-training.

    Subclasses implement :meth:`forward` and return ``{key: tensor}``; keys that contain
    ``loss`` are summed into the objective, other keys are only logged. Keys are plain
    (``loss`` for a term's one loss, ``loss_<what>`` for several, ``pseudo_ratio``): the adapter
    logs them under the term's config name (``sac.loss``, ``sac.pseudo_ratio``) and adds
    ``<name>.loss``, the term's total. The console line shows that total and the few
    diagnostics a term names in ``console_keys``; every key goes to TensorBoard.

    The adapter holds terms by config name (``terms.<name>.*`` in checkpoints,
    ``--cfg-options model.terms.<name>.weight=2``) and skips a term outside its
    ``start_iter`` / ``end_iter`` (adapter settings given in the term's config).

    A term may own trainable modules (a discriminator, a classification or projection head):
    :meth:`optimised_modules` declares them by optimiser name. Modules declared under
    ``'student'`` are trained by the student's optimiser and backward pass; any other name
    (``'discriminators'``) gets its own optimiser wrapper and its own phase after the student
    update, whose losses :meth:`phase_loss` returns (on inputs the term cached, detached, in
    :meth:`forward`). :class:`uda.engine.AdapterOptimWrapperConstructor` builds one wrapper per
    declared name.

    Labellers: a term that reads pseudo-labels names the adapter's labellers in constructor
    arguments, declared in ``labeller_args`` (argument -> the labeller config the term is made
    for, e.g. ``{'labeller': dict(type='QualityLabeller')}``) and kept as attributes of the same
    name. From them the adapter derives whether the term needs the teacher (a labeller it
    names, or one such a labeller wraps, reads the teacher) and so when the term starts, and the
    generic tests build the term with these labellers.

    Attributes:
        labeller_args: Constructor arguments that name labellers, with their default configs.
        console_keys: Diagnostics worth the console line (at most three are shown in all).
        reads_teacher: The term itself reads the teacher (:meth:`StepContext.teacher`), not
            only through labellers.
        needs_teacher: Set by the adapter: the term reads the teacher itself or through its
            labellers, so the adapter has a momentum teacher and the term starts at the
            teacher's ``start_iter`` unless its config says otherwise.
        needs_aux: Student forwards must also return the auxiliary head's logits (instances
            set it from their arguments).
        term_name: The config name, set by the adapter.
    """

    labeller_args: ClassVar[dict[str, dict]] = {}
    console_keys: ClassVar[tuple[str, ...]] = ()
    reads_teacher: ClassVar[bool] = False
    needs_teacher: bool = False
    needs_aux: bool = False
    term_name: str = ''

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, ctx: StepContext) -> TermOutput:
        """The term's losses on the step: ``{name: tensor}``.

        A term that builds its loss in parts (SAC's views in chunks, to hold one chunk's graph
        at a time) may instead be a generator: each ``yield {key: partial loss}`` is
        back-propagated by the adapter at once in a training step (kept with its graph
        otherwise), and the dict it returns holds the last part and the diagnostics; the
        adapter adds the yielded parts (detached) to the returned value of the same key, so
        the logged loss is the whole sum. A term never calls ``backward()`` itself.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement forward(ctx).')

    def setup(self, adapter: Adapter) -> None:
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
        source: 'teacher' (the momentum teacher), ``'teachers.<name>'`` (a named teacher of
            ``Adapter(teachers=...)``, e.g. DACS's beside SAC's in the full pipeline),
            'student' (the student in eval mode,
            without gradient, as UniMatch's ``model.eval()`` predictions of the CutMix partner)
            or 'student_train' (the student's cached training-mode forward of the branch,
            detached: UniMatch / FixMatch label the weak view with the train-mode predictions
            of the forward that also feeds the feature perturbation, so no extra pass runs;
            LiheYoung/UniMatch ``unimatch.py`` ``pred_u_w.detach()``).
    """

    SOURCES = ('teacher', 'student', 'student_train')
    # Arguments naming other labellers this one reads (derived labellers), as Term's.
    labeller_args: ClassVar[dict[str, dict]] = {}

    def __init__(self, source: str = 'teacher') -> None:
        super().__init__()
        named = source.startswith('teachers.') and len(source) > len('teachers.')
        if source not in self.SOURCES and not named:
            raise ValueError(
                f'{type(self).__name__}(source={source!r}): use one of {self.SOURCES} or '
                "'teachers.<name>' (a teacher of Adapter(teachers=dict(<name>=...)))."
            )
        self.source: Optional[str] = source

    @property
    def teacher_key(self) -> Optional[str]:
        """The teacher this labeller reads itself: 'teacher', 'teachers.<name>' or None."""
        if self.source == 'teacher' or (self.source or '').startswith('teachers.'):
            return self.source
        return None

    @property
    def needs_teacher(self) -> bool:
        """This labeller reads a teacher itself (labellers it wraps say so themselves)."""
        return self.teacher_key is not None

    def setup(self, adapter: Adapter) -> None:
        """Build buffers sized by the student (e.g. a class prior); nothing by default."""

    def predict(self, ctx: StepContext, x: Tensor) -> Tensor:
        """Class probabilities [B, C, H, W] (float32) of the source network on ``x``."""
        if self.teacher_key is not None:
            logits = ctx.teacher_forward(x, self.teacher_key)['logits']
        elif self.source == 'student_train':
            raise ValueError(
                f"{type(self).__name__}(source='student_train') labels a batch branch from its "
                "cached training forward only; use source='student' for other inputs."
            )
        else:
            logits = ctx.student_eval_logits(x)
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


class DerivedLabeller(Labeller):
    """A labeller that transforms another labeller's pseudo-labels (e.g. drops classes an
    image's labels rule out) and reads no network itself.

    The wrapped labeller is named by ``labeller`` (declared in ``labeller_args``, so the
    adapter follows it: the derived labeller needs the teacher when the wrapped one does) and
    computed once per step through the context, shared with terms that name it directly.
    Subclasses implement :meth:`derive` and return labels of the same type
    (``dataclasses.replace`` keeps a :class:`ViewPseudoLabels`' views).

    Args:
        labeller: Name of the wrapped labeller.
    """

    labeller_args: ClassVar[dict[str, dict]] = {'labeller': dict(type='ConfidenceLabeller')}

    def __init__(self, labeller: str) -> None:
        nn.Module.__init__(self)
        self.source = None  # no network of its own
        self.labeller = labeller

    def predict(self, ctx: StepContext, x: Tensor) -> Tensor:
        raise TypeError(f'{type(self).__name__} reads no network; it derives its labels.')

    def derive(self, ctx: StepContext, branch: str, pl: PseudoLabels) -> PseudoLabels:
        raise NotImplementedError(f'{type(self).__name__} must implement derive(ctx, branch, pl).')

    def forward(self, ctx: StepContext, branch: str) -> PseudoLabels:
        return self.derive(ctx, branch, ctx.pseudo_labels(branch, self.labeller))


__all__ = ['DerivedLabeller', 'Labeller', 'Term', 'TermOutput', 'labeller_names']
