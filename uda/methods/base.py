"""The adapter and the term interface: a method is a composition of terms.

One registered model (:class:`Adapter`) owns the student segmentor (and, for terms that need
one, a teacher) and runs the list of terms from the config. A term computes named losses from
the batch; the adapter sums keys that contain ``loss`` and logs the rest. The Runner's
``IterBasedTrainLoop`` owns the loop and the optimiser wrappers own backward and steps, so a
term never calls ``backward()`` or steps an optimiser.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from uda.evaluation.inference import check_test_cfg, run_inference
from uda.registry import MODELS, TERMS

Batch = dict[str, Any]
# Averages the gradients of an optimiser wrapper's parameters over data-parallel ranks
# (uda.engine.AdapterDataParallel.sync_gradients).
GradSync = Callable[[OptimWrapper], None]


def stack_gt(data_samples: list[dict], device: Optional[torch.device] = None) -> Tensor:
    """Stack the (padded) ``gt_sem_seg`` of a branch into [B, H, W] int64."""
    try:
        gts = [s['gt_sem_seg'] for s in data_samples]
    except KeyError:
        raise KeyError('A term needs labels (gt_sem_seg) but this branch has none; give its '
                       'dataset labels (with_label=True) or drop the term.') from None
    gt = torch.stack(gts, 0)
    return gt if device is None else gt.to(device)


class Term(nn.Module):
    """One ingredient of a method, e.g. source cross-entropy or adaptive BN.

    Subclasses implement :meth:`forward` and return ``{name: tensor}``; keys that contain
    ``loss`` are summed into the objective (name them ``<branch>.loss_<what>``), other keys are
    only logged. A term may own modules (e.g. a discriminator); they become part of the
    adapter's state dict and checkpoints.

    Attributes:
        order: Terms run in ascending order (stable); terms that must see the network after
            every other forward (adaptive BN) use a high value.
        needs_teacher: Whether the adapter must build a teacher for this term.
        needs_aux: Whether :meth:`Adapter.student_forward` must also return the auxiliary
            head's logits (instances set it from their arguments).

    A term that trains its own discriminator keeps it in ``self.discriminator`` (saved in
    checkpoints as ``terms.<i>.discriminator.*``), caches detached inputs for it during
    :meth:`forward` and returns the discriminator's losses from :meth:`discriminator_loss`; the
    adapter then needs an ``OptimWrapperDict`` with 'student' and 'discriminators' wrappers
    (:class:`uda.engine.AdapterOptimWrapperConstructor`).
    """

    order: int = 0
    needs_teacher: bool = False
    needs_aux: bool = False

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, adapter: 'Adapter', inputs: dict[str, Tensor],
                data_samples: dict[str, list[dict]]) -> dict[str, Tensor]:
        raise NotImplementedError(f'{type(self).__name__} must implement forward().')

    def vis_panels(self) -> dict[str, Tensor]:
        """Images for TensorBoard from the last call (e.g. pseudo-labels); none by default."""
        return {}

    def setup(self, adapter: 'Adapter') -> None:
        """Build what depends on the student (a discriminator's input channels, buffers sized
        by ``num_classes``).

        Called once by :class:`Adapter` after the student exists, so that every parameter and
        buffer exists before the Runner builds the optimisers and loads a checkpoint. Nothing
        by default.
        """

    @property
    def owns_discriminator(self) -> bool:
        """Whether this term trains a discriminator (``self.discriminator``)."""
        return isinstance(getattr(self, 'discriminator', None), nn.Module)

    def discriminator_loss(self, adapter: 'Adapter') -> dict[str, Tensor]:
        """Losses of the term's discriminator on the detached inputs cached by the last
        :meth:`forward`; called by :meth:`Adapter.train_step` after the segmentor update."""
        if self.owns_discriminator:
            raise NotImplementedError(f'{type(self).__name__} owns a discriminator and must '
                                      'implement discriminator_loss().')
        return {}


@MODELS.register_module()
class Adapter(BaseModel):
    """A segmentor trained by a list of terms (source CE, adaptive BN, self-training ...).

    Args:
        segmentor: Config of the student network (e.g. :class:`uda.models.SMPSegmentor`).
        terms: Configs of the terms (``uda.registry.TERMS``), run in order.
        data_preprocessor: Config of the preprocessor (normalise, pad, stack per branch).
        num_classes: Classes of the label space; read from the segmentor when omitted.
        ignore_index: Label value of unlabelled pixels.
        test_cfg: Inference settings (validation loop, ``tools/test.py``), see
            :func:`check_test_cfg`: ``mode='whole'|'slide'|'aug'``, ``crop_size`` and
            ``stride`` for sliding windows, ``scales`` and ``flip`` for multi-scale + flip,
            ``which='student'|'teacher'``.
        teacher: Momentum teacher settings ``dict(momentum=0.99, interval=100, start_iter=0)``
            (see :meth:`update_teacher`); a teacher is built when this is given or a term has
            ``needs_teacher``. ``EMATeacherHook`` initialises it from the student at
            ``start_iter`` and updates it after the optimiser step.
    """

    def __init__(self, segmentor: dict, terms: list[dict],
                 data_preprocessor: Optional[dict] = None, num_classes: Optional[int] = None,
                 ignore_index: int = 255, test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, teacher: Optional[dict] = None) -> None:
        # Built here (not by BaseModel) so it resolves in uda's registry outside a Runner too.
        preprocessor = MODELS.build(data_preprocessor or dict(type='SegDataPreprocessor'))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(segmentor)
        if not terms:
            raise ValueError('Adapter needs at least one term, e.g. terms=[dict(type="SourceCE")].')
        built = [TERMS.build(t) for t in terms]
        built.sort(key=lambda t: t.order)  # stable: config order among equals
        self.terms = nn.ModuleList(built)
        self.num_classes = int(num_classes or getattr(self.student, 'num_classes'))
        self.ignore_index = ignore_index
        self._fwd_cache: dict[str, tuple[Tensor, dict[str, Any]]] = {}
        self._want_aux = any(t.needs_aux for t in self.terms)
        for term in self.terms:
            term.setup(self)
        self.test_cfg = check_test_cfg(test_cfg)
        self.teacher: Optional[nn.Module] = None
        self.teacher_cfg: Optional[dict] = None
        if teacher is not None or any(t.needs_teacher for t in self.terms):
            self._build_teacher(teacher or {})

    # ------------------------------------------------------------------ teacher
    def _build_teacher(self, cfg: dict) -> None:
        unknown = set(cfg) - {'momentum', 'interval', 'start_iter'}
        if unknown:
            raise KeyError(f'Adapter(teacher=...) got unknown keys {sorted(unknown)}; use '
                           'dict(momentum=0.99, interval=100, start_iter=0).')
        self.teacher_cfg = dict(momentum=float(cfg.get('momentum', 0.99)),
                                interval=int(cfg.get('interval', 100)),
                                start_iter=int(cfg.get('start_iter', 0)))
        if not 0.0 <= self.teacher_cfg['momentum'] <= 1.0 or self.teacher_cfg['interval'] < 1:
            raise ValueError(f'Adapter(teacher={cfg}): momentum must be in [0, 1] and interval '
                             '>= 1.')
        self.teacher = copy.deepcopy(self.student)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        # 1 once the teacher has been initialised from the student (saved with checkpoints, so
        # a resumed run does not re-initialise it).
        self.register_buffer('teacher_ready', torch.zeros((), dtype=torch.bool))
        # DDP: the teacher is updated identically on every rank by EMATeacherHook; keep its
        # parameters and buffers out of DDP's gradient reduction and buffer broadcast.
        self._ddp_params_and_buffers_to_ignore = [
            f'teacher.{n}' for n, _ in self.teacher.named_parameters()] + [
            f'teacher.{n}' for n, _ in self.teacher.named_buffers()]

    @property
    def self_training(self) -> bool:
        """Whether the teacher has been initialised (self-training has started)."""
        return self.teacher is not None and bool(self.teacher_ready)

    @torch.no_grad()
    def init_teacher(self) -> None:
        """Copy the student into the teacher (weights and BN statistics)."""
        if self.teacher is None:
            raise RuntimeError('init_teacher(): this model has no teacher; give '
                               'Adapter(teacher=dict(...)) or a term with needs_teacher.')
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher_ready.fill_(True)

    @torch.no_grad()
    def update_teacher(self, momentum: Optional[float] = None) -> None:
        """``teacher = m * teacher + (1 - m) * student`` over parameters and float buffers.

        Integer buffers (BN's ``num_batches_tracked``) are copied from the student.
        """
        if not self.self_training:
            raise RuntimeError('update_teacher() before init_teacher().')
        m = self.teacher_cfg['momentum'] if momentum is None else float(momentum)
        s_state = self.student.state_dict()
        for name, t in self.teacher.state_dict().items():
            s = s_state[name]
            if t.dtype.is_floating_point:
                t.mul_(m).add_(s.detach().to(t.dtype), alpha=1.0 - m)
            else:
                t.copy_(s)

    def train(self, mode: bool = True) -> 'Adapter':
        """Set train/eval mode; the teacher always stays in eval mode."""
        super().train(mode)
        if getattr(self, 'teacher', None) is not None:
            self.teacher.eval()
        return self

    # ------------------------------------------------------------------ training
    def forward(self, inputs: Any, data_samples: Any = None, mode: str = 'tensor') -> Any:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student(inputs)
        raise ValueError(f"Adapter.forward: unknown mode {mode!r}; use 'loss', 'predict' or "
                         "'tensor'.")

    def loss(self, inputs: dict[str, Tensor], data_samples: dict[str, list[dict]]
             ) -> dict[str, Tensor]:
        """Run every term and collect their named losses and diagnostics."""
        if not isinstance(inputs, dict):
            raise TypeError('Training batches must be dicts of branches, e.g. {"source": ..., '
                            '"target": ...}: wrap the train dataset in MultiBranchDataset.')
        losses: dict[str, Tensor] = {}
        self._fwd_cache = {}
        for term in self.terms:
            out = term(self, inputs, data_samples)
            clash = set(out) & set(losses)
            if clash:
                raise KeyError(f'Terms produced the same keys {sorted(clash)}; give one of them '
                               'another prefix.')
            losses.update(out)
        return losses

    def student_forward(self, branch: str, x: Tensor) -> dict[str, Any]:
        """Student outputs on a branch, computed once per training step and shared by terms.

        Source CE, adversarial and entropy terms all need the student's outputs on the same
        batch; sharing them avoids extra forwards (and extra BatchNorm updates).

        Returns:
            ``dict(logits, features, decoder)`` and ``aux_logits`` when a term needs the
            auxiliary head (see :class:`uda.models.SMPSegmentor`).
        """
        hit = self._fwd_cache.get(branch)
        if hit is not None and hit[0] is x:
            return hit[1]
        out = self.student(x, return_features=True, return_aux=self._want_aux)
        self._fwd_cache[branch] = (x, out)
        return out

    def _check_finite(self, parsed: Tensor, losses: dict[str, Tensor]) -> None:
        if not torch.isfinite(parsed):
            it = MessageHub.get_current_instance().get_info('iter')
            bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
            raise FloatingPointError(
                f'Loss became {parsed.item()} at iteration {it} (non-finite: {bad}). Lower the '
                'learning rate, enable optim_wrapper.clip_grad, or check the data.')

    def train_step(self, data: Batch, optim_wrapper: OptimWrapper,
                   grad_sync: Optional[GradSync] = None) -> dict[str, Tensor]:
        """Preprocess, compute the losses, fail on non-finite values, step the optimiser.

        With an ``OptimWrapperDict`` (terms that own discriminators) the step has two phases,
        see :meth:`_train_step_multi`.

        Args:
            data: The collated batch (a dict of branches).
            optim_wrapper: One ``OptimWrapper``, or ``OptimWrapperDict(student=...,
                discriminators=...)``.
            grad_sync: Called with each optimiser wrapper between its backward pass and its
                step, only when it steps; data-parallel training averages gradients over
                ranks here (:class:`uda.engine.AdapterDataParallel`).
        """
        if isinstance(optim_wrapper, OptimWrapperDict):
            return self._train_step_multi(data, optim_wrapper, grad_sync)
        owners = [type(t).__name__ for t in self.terms if t.owns_discriminator]
        if owners:
            raise TypeError(
                f'Terms {owners} train their own discriminator, which needs its own optimiser: '
                "set optim_wrapper=dict(constructor='AdapterOptimWrapperConstructor', "
                'student=dict(type=\'OptimWrapper\', optimizer=...), '
                "discriminators=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, "
                'betas=(0.9, 0.99)))).')
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        self._check_finite(parsed, losses)
        self._update_params(optim_wrapper, parsed, grad_sync)
        self._fwd_cache = {}
        return log_vars

    @staticmethod
    def _update_params(optim_wrapper: OptimWrapper, loss: Tensor,
                       grad_sync: Optional[GradSync]) -> None:
        """``optim_wrapper.update_params(loss)`` with ``grad_sync`` after the backward pass.

        Only when the wrapper steps this time (``should_update``, so gradients accumulated over
        several steps are synchronised once) and before ``step``, where an AMP wrapper unscales,
        checks for infs and clips.
        """
        if grad_sync is None:
            optim_wrapper.update_params(loss)
            return
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        if optim_wrapper.should_update():
            grad_sync(optim_wrapper)
            optim_wrapper.step()
            optim_wrapper.zero_grad()

    @contextmanager
    def _discriminators_frozen(self) -> Iterator[None]:
        """Discriminator parameters take no gradient while the segmentor tries to fool them."""
        params = [p for t in self.terms if t.owns_discriminator
                  for p in t.discriminator.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def _train_step_multi(self, data: Batch, optim_wrappers: OptimWrapperDict,
                          grad_sync: Optional[GradSync] = None) -> dict[str, Tensor]:
        """Segmentor step, then discriminator step, each with its own optimiser wrapper.

        1. Segmentor: every term's losses with the discriminators frozen (their parameters get
           no gradient); ``optim_wrappers['student']`` steps the student.
        2. Discriminators: each term that owns one scores the *detached* inputs it cached in
           step 1; ``optim_wrappers['discriminators']`` steps them. The student gets no
           gradient here.
        Each wrapper keeps its own AMP loss scaler, accumulation counter and schedule;
        ``grad_sync`` (see :meth:`train_step`) runs for each before it steps.
        """
        names = set(optim_wrappers.keys())
        if 'student' not in names:
            raise KeyError(f'optim_wrapper has {sorted(names)} but needs a \'student\' '
                           'wrapper; build it with AdapterOptimWrapperConstructor.')
        student_ow = optim_wrappers['student']
        with student_ow.optim_context(self), self._discriminators_frozen():
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        self._check_finite(parsed, losses)
        self._update_params(student_ow, parsed, grad_sync)
        self._fwd_cache = {}

        owners = [t for t in self.terms if t.owns_discriminator]
        if not owners:
            return log_vars
        if 'discriminators' not in names:
            raise KeyError(f'Terms {[type(t).__name__ for t in owners]} own discriminators but '
                           f'optim_wrapper has only {sorted(names)}; add discriminators=dict('
                           "type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, "
                           'betas=(0.9, 0.99))).')
        disc_ow = optim_wrappers['discriminators']
        d_losses: dict[str, Tensor] = {}
        with disc_ow.optim_context(self):
            for term in owners:
                out = term.discriminator_loss(self)
                clash = set(out) & (set(d_losses) | set(losses))
                if clash:
                    raise KeyError(f'Discriminator losses reuse keys {sorted(clash)}; give the '
                                   'terms different prefixes.')
                d_losses.update(out)
        d_parsed, d_log = self.parse_losses(d_losses)
        self._check_finite(d_parsed, d_losses)
        self._update_params(disc_ow, d_parsed, grad_sync)
        d_log.pop('loss')
        log_vars.update(d_log)
        return log_vars

    # ------------------------------------------------------------------ inference
    def segmentor_for(self, which: str = 'student') -> nn.Module:
        """The network used for inference: ``'student'`` or (with a teacher) ``'teacher'``."""
        if which == 'teacher' and self.teacher is not None:
            return self.teacher
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

    def predict(self, inputs: Tensor, data_samples: Optional[list[dict]] = None
                ) -> list[dict[str, Any]]:
        """Predict each image, cropped back from padding to its own size.

        Returns:
            One dict per image with ``pred_sem_seg`` (int64 [H, W]), ``gt_sem_seg`` when the
            sample had labels, and the sample's meta information.
        """
        logits = self.inference(inputs)
        data_samples = data_samples or [dict(img_shape=tuple(inputs.shape[-2:]))
                                        for _ in range(len(inputs))]
        results = []
        for i, sample in enumerate(data_samples):
            h, w = sample.get('img_shape', inputs.shape[-2:])
            out = {k: v for k, v in sample.items() if k != 'gt_sem_seg'}
            out['pred_sem_seg'] = logits[i, :, :h, :w].argmax(0)
            if 'gt_sem_seg' in sample:
                out['gt_sem_seg'] = sample['gt_sem_seg'][:h, :w]
            results.append(out)
        return results
