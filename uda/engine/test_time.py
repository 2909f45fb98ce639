"""Test-time adaptation: adapt a trained model on the unlabelled stream it predicts, batch by batch.

A deployed model meets new conditions where the source data is not at hand. For every batch of
the stream, :class:`TestTimeAdapter` runs the adapter's terms on the batch (its labels are
removed first: adaptation never sees them), steps the optimiser, updates the momentum teacher as
:class:`uda.engine.EMATeacherHook` does in training, and then predicts the batch with the updated
network; the metrics are those of these predictions. ``reset='episodic'`` returns to the source
weights before every batch (DequanWang/tent ``tent.py:35-39``), ``'continual'`` carries the
adaptation along the stream. :class:`TestTimeAdaptLoop` is the same as a registered mmengine
loop (``test_cfg=dict(type='TestTimeAdaptLoop', ...)``), so ``tools/test.py``, its hooks
(prediction writer) and evaluator work unchanged; ``tools/adapt.py`` is a thin tool over it.

Methods are configs of terms (``configs/_base_/methods/tta_*.py``): BN-adapt (test-batch
statistics mixed with the source ones, :func:`prior_batch_norm`), TENT (entropy on the
normalisation layers' affine parameters, ``segmentor.train_only``), CoTTA
(:mod:`uda.methods.cotta` plus ``restore_prob``) and SAC at test time (its labeller and term).
A collapse guard (:class:`CollapseGuard`) resets to the source weights when the predicted class
histogram or the prediction entropy falls far below that of the first batches (entropy
minimisation collapses on long streams, DequanWang/tent issue #22).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from contextlib import contextmanager
from types import MethodType
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.runner.loops import TestLoop
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from uda.losses.entropy import pixel_entropy
from uda.registry import LOOPS

RESETS = ('continual', 'episodic')


def _teachers(model: Any) -> list[Any]:
    """The adapter's momentum teachers (its teacher and named ones), as EMATeacherHook's."""
    named = getattr(model, 'momentum_teachers', None)
    if callable(named):
        return list(named().values())
    teacher = getattr(model, 'teacher', None)
    return [] if teacher is None else [teacher]


PREDICT_WITH = ('student', 'teacher')


def _prior_bn_forward(self: _BatchNorm, x: Tensor) -> Tensor:
    """BatchNorm with ``lambda * source + (1 - lambda) * test-batch`` statistics,
    ``lambda = N / (N + n)`` (n images in the batch). With N > 0 the batch variance is the
    unbiased one, as robusta's ``BayesianBatchNorm`` takes it (bethgelab/robustness
    ``robusta/batchnorm/bn.py:205``); with N = 0 the biased one, so the output is exactly a
    training-mode BatchNorm's (TENT, DequanWang/tent ``tent.py:96-110``). Gradients flow
    through the batch statistics, as in a training-mode BatchNorm."""
    strength = float(self.__dict__['_tta_prior_strength'])
    dims = [0, *range(2, x.dim())]
    count = x.numel() // x.shape[1]
    mixed = strength > 0 and self.running_mean is not None and self.running_var is not None
    mean = x.mean(dims)
    var = x.var(dims, unbiased=bool(mixed and count > 1))
    if mixed:
        assert self.running_mean is not None and self.running_var is not None
        lam = strength / (strength + x.shape[0])
        mean = lam * self.running_mean + (1.0 - lam) * mean
        var = lam * self.running_var + (1.0 - lam) * var
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
    if self.weight is not None and self.bias is not None:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    return out


@contextmanager
def prior_batch_norm(
    modules: Sequence[nn.Module], prior_strength: Optional[float]
) -> Iterator[list[_BatchNorm]]:
    """Every BatchNorm layer under ``modules`` normalises with test-batch statistics.

    Schneider et al. (NeurIPS 2020): ``mu = N/(N+n) mu_source + n/(N+n) mu_batch`` and the same
    for the variance (bethgelab/robustness ``examples/batchnorm/src/evaluate.py:343-351``);
    ``prior_strength`` is N. 0 gives pure test-batch statistics (TENT, CoTTA's train-mode
    BatchNorm); None leaves the layers alone (source statistics in eval mode). The running
    statistics are never updated, so the source model is recovered exactly outside the context.
    State-dict keys and parameters are unchanged (the forward is patched, not the module).

    Yields:
        The patched layers.
    """
    if prior_strength is None:
        yield []
        return
    if float(prior_strength) < 0:
        raise ValueError(f'norm.prior_strength={prior_strength} must be >= 0 (or None).')
    bns = [m for root in modules for m in root.modules() if isinstance(m, _BatchNorm)]
    for m in bns:
        m._tta_prior_strength = float(prior_strength)  # type: ignore[assignment]
        m.forward = MethodType(_prior_bn_forward, m)  # type: ignore[method-assign]
    try:
        yield bns
    finally:
        for m in bns:
            m.__dict__.pop('forward', None)
            m.__dict__.pop('_tta_prior_strength', None)


def _histogram_entropy(hist: Tensor) -> float:
    p = hist / hist.sum().clamp(min=1e-12)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


class CollapseGuard:
    """Watch the predictions of a stream for collapse; say when to reset to the source weights.

    Per batch it takes the histogram of predicted classes (non-padding pixels) and the mean
    normalised pixel entropy, and keeps their exponential moving averages. The references are
    the same statistics of the source model's predictions on the first ``warmup`` batches
    (:meth:`reference`, fed by :class:`TestTimeAdapter` with the predictions made before those
    batches' adaptation steps). Collapse is declared when the entropy of the averaged class
    histogram falls below ``min_class_entropy`` times its reference (the predictions
    concentrate on few classes), or the averaged pixel entropy below ``min_pixel_entropy``
    times its reference (over-confidence). After a reset the averages restart from the next
    batch; the references stay.

    Args:
        num_classes: Classes of the label space.
        warmup: Batches that form the references.
        momentum: EMA momentum of the watched statistics.
        min_class_entropy: Ratio limit of the class-histogram entropy (None: not watched).
        min_pixel_entropy: Ratio limit of the mean pixel entropy (None: not watched).
    """

    def __init__(
        self,
        num_classes: int,
        warmup: int = 4,
        momentum: float = 0.8,
        min_class_entropy: Optional[float] = 0.5,
        min_pixel_entropy: Optional[float] = None,
    ) -> None:
        if int(warmup) < 1 or not 0.0 <= float(momentum) < 1.0:
            raise ValueError(
                f'collapse_guard: warmup={warmup} must be >= 1 and momentum={momentum} in [0, 1).'
            )
        if min_class_entropy is None and min_pixel_entropy is None:
            raise ValueError(
                'collapse_guard watches nothing: set min_class_entropy and/or min_pixel_entropy '
                '(ratios to the first batches, e.g. 0.5), or drop collapse_guard.'
            )
        self.num_classes, self.warmup, self.momentum = int(num_classes), int(warmup), momentum
        self.min_class_entropy, self.min_pixel_entropy = min_class_entropy, min_pixel_entropy
        self.references = 0
        self.ref_hist = torch.zeros(self.num_classes, dtype=torch.float64)
        self.ref_pixel = 0.0
        self.hist: Optional[Tensor] = None
        self.pixel: Optional[float] = None
        self.last: dict[str, float] = {}

    @property
    def needs_reference(self) -> bool:
        return self.references < self.warmup

    def restart(self) -> None:
        """Forget the moving averages (after a reset); keep the references."""
        self.hist, self.pixel = None, None

    def _stats(self, pred: Tensor, valid: Tensor, entropy: Tensor) -> tuple[Tensor, float]:
        hist = torch.bincount(pred[valid].flatten().cpu(), minlength=self.num_classes)
        hist = hist[: self.num_classes].double()
        pixel = float(entropy[valid].float().mean()) if valid.any() else 0.0
        return hist / hist.sum().clamp(min=1), pixel

    def reference(self, pred: Tensor, valid: Tensor, entropy: Tensor) -> None:
        """Add one batch of source-model predictions to the references (``pred`` [B, H, W]
        class ids, ``valid`` [B, H, W] bool, ``entropy`` [B, H, W] normalised pixel entropy)."""
        if not self.needs_reference:
            return
        hist, pixel = self._stats(pred, valid, entropy)
        self.ref_hist += hist / self.warmup
        self.ref_pixel += pixel / self.warmup
        self.references += 1

    def observe(self, pred: Tensor, valid: Tensor, entropy: Tensor) -> Optional[str]:
        """Add one batch of the adapted predictions (as :meth:`reference`). Returns the reason
        when the stream collapsed; nothing is checked before the references are complete."""
        hist, pixel = self._stats(pred, valid, entropy)
        m = self.momentum
        self.hist = hist if self.hist is None else m * self.hist + (1 - m) * hist
        self.pixel = pixel if self.pixel is None else m * self.pixel + (1 - m) * pixel
        if self.needs_reference:
            return None
        h_now, h_ref = _histogram_entropy(self.hist), _histogram_entropy(self.ref_hist)
        self.last = dict(class_entropy=h_now, class_entropy_ref=h_ref, pixel_entropy=self.pixel)
        if self.min_class_entropy is not None and h_now < self.min_class_entropy * h_ref:
            return (
                f'class-histogram entropy {h_now:.3f} < {self.min_class_entropy} x '
                f'{h_ref:.3f} of the source model on the first {self.warmup} batches'
            )
        if self.min_pixel_entropy is not None and self.pixel < self.min_pixel_entropy * (
            self.ref_pixel
        ):
            return (
                f'mean pixel entropy {self.pixel:.4f} < {self.min_pixel_entropy} x '
                f'{self.ref_pixel:.4f} of the source model on the first {self.warmup} batches'
            )
        return None


def _unwrap(model: nn.Module) -> Any:
    return model.module if is_model_wrapper(model) else model


class TestTimeAdapter:
    """Adapt-then-predict over a stream of batches, for an :class:`uda.methods.Adapter`.

    Call :meth:`start` once the source weights are loaded (it snapshots them), then
    :meth:`step` per batch. The adapter's terms read the batch as branch ``branch`` without
    labels; ``bn_policy`` is not used (``norm`` decides the BatchNorm statistics of every
    network of the adapter: student, teacher and a labeller's anchor).

    Args:
        model: The adapter (with the source weights loaded).
        optim_wrapper: mmengine optimiser-wrapper config over the adapter's parameters (only
            those with ``requires_grad`` train: ``segmentor.train_only`` chooses them).
        reset: 'continual' (keep adapting along the stream) or 'episodic' (back to the source
            weights, teacher and optimiser state before every batch).
        steps: Optimiser steps per batch (TENT, CoTTA: 1). 0 adapts normalisation only.
        norm: ``dict(prior_strength=N)``: BatchNorm statistics of every forward
            (:func:`prior_batch_norm`: 0 = test batch only, None = the source ones).
        predict_with: 'student' or 'teacher' (CoTTA predicts with its teacher).
        restore_prob: CoTTA's stochastic restore: after every step each trainable weight
            element returns to its source value with this probability (qinenergy/cotta
            ``cifar/cotta.py:119-125``; 0.01).
        collapse_guard: :class:`CollapseGuard` arguments (``dict(min_class_entropy=0.5)``), or
            None for no guard.
        branch: Branch name the terms read (their ``branch`` argument, 'target').
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        model: nn.Module,
        optim_wrapper: Optional[dict] = None,
        reset: str = 'continual',
        steps: int = 1,
        norm: Optional[dict] = None,
        predict_with: str = 'student',
        restore_prob: float = 0.0,
        collapse_guard: Optional[dict] = None,
        branch: str = 'target',
    ) -> None:
        if reset not in RESETS:
            raise ValueError(f'test-time reset={reset!r}: use one of {RESETS}.')
        if predict_with not in PREDICT_WITH:
            raise ValueError(f'test-time predict_with={predict_with!r}: use one of {PREDICT_WITH}.')
        if int(steps) < 0 or not 0.0 <= float(restore_prob) <= 1.0:
            raise ValueError(
                f'test-time steps={steps} must be >= 0 and restore_prob={restore_prob} in [0, 1].'
            )
        norm = dict(norm or {})
        unknown = sorted(set(norm) - {'prior_strength'})
        if unknown:
            raise ValueError(
                f'test-time norm: unknown key(s) {unknown}; use dict(prior_strength=N) '
                '(0: test-batch statistics, None: source statistics).'
            )
        self.model = _unwrap(model)
        self.optim_cfg = optim_wrapper
        self.reset_mode, self.steps = reset, int(steps)
        self.prior_strength: Optional[float] = norm.get('prior_strength')
        self.predict_with, self.restore_prob = predict_with, float(restore_prob)
        self.guard_cfg = collapse_guard
        self.branch = branch
        self.guard: Optional[CollapseGuard] = None
        self.optim_wrapper: Optional[OptimWrapper] = None
        self._source: dict[str, Tensor] = {}
        self._optim_state: dict = {}
        self.iter = 0
        self.batches = 0
        self.images = 0
        self.seconds = 0.0
        self.resets: list[dict[str, Any]] = []
        self.log: dict[str, float] = {}

    # ------------------------------------------------------------------ state
    def _networks(self) -> list[nn.Module]:
        """Every network of the adapter, plus a labeller's anchor (held outside the state)."""
        nets: list[nn.Module] = [self.model]
        for lab in self.model.labellers.values():
            anchor = getattr(lab, 'anchor', None)
            if isinstance(anchor, nn.Module):
                nets.append(anchor)
        return nets

    def start(self) -> None:
        """Snapshot the source state: the teacher is copied from the student (as
        EMATeacherHook does before the teacher's first iteration), a labeller or term with a
        ``start_stream(adapter)`` method takes what it needs (CoTTA's anchor), the optimiser is
        built."""
        self.model.eval()
        for teacher in _teachers(self.model):
            teacher.init_from(self.model.student)
        for module in [*self.model.labellers.values(), *self.model.terms.values()]:
            hook = getattr(module, 'start_stream', None)
            if callable(hook):
                hook(self.model)
        self._source = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.steps > 0 and self.optim_cfg is not None:
            self.optim_wrapper = build_optim_wrapper(self.model, copy.deepcopy(self.optim_cfg))
            self._optim_state = copy.deepcopy(self.optim_wrapper.optimizer.state_dict())
        if self.guard_cfg is not None:
            self.guard = CollapseGuard(self.model.num_classes, **self.guard_cfg)

    def reset(self) -> None:
        """Back to the source weights, teacher, labeller statistics and optimiser state."""
        if not self._source:
            raise RuntimeError('TestTimeAdapter.reset() before start().')
        self.model.load_state_dict(self._source)
        if self.optim_wrapper is not None:
            self.optim_wrapper.optimizer.load_state_dict(copy.deepcopy(self._optim_state))

    @torch.no_grad()
    def _restore(self) -> None:
        """CoTTA's stochastic restore of the trainable student weights."""
        for name, p in self.model.student.named_parameters():
            if not p.requires_grad:
                continue
            source = self._source[f'student.{name}'].to(p.device, p.dtype)
            mask = torch.rand_like(p) < self.restore_prob
            p.copy_(torch.where(mask, source, p))

    # ------------------------------------------------------------------ stream
    def step(self, data: dict) -> list[dict[str, Any]]:
        """Adapt on one collated test batch (``inputs`` / ``data_samples``), then predict it.

        Returns one dict per image as :meth:`uda.methods.Adapter.predict` (``pred_sem_seg``,
        ``gt_sem_seg`` when the sample had labels, meta information).
        """
        if not self._source:
            self.start()
        t0 = time.perf_counter()
        if self.reset_mode == 'episodic' and self.batches > 0:
            self.reset()
        model = self.model
        data = model.data_preprocessor(data, False)
        x, samples = data['inputs'], data['data_samples']
        unlabelled = [{k: v for k, v in s.items() if k != 'gt_sem_seg'} for s in samples]
        updated = False
        log: dict[str, float] = {}
        with prior_batch_norm(self._networks(), self.prior_strength):
            if self.guard is not None and self.guard.needs_reference:
                # The collapse references: predictions before this batch's steps (the source
                # model on the first batch), only during the guard's warm-up.
                self._watch(model.inference(x, self.predict_with), samples, reference=True)
            ctx = None
            for _ in range(self.steps):
                ctx = model.make_context(
                    {self.branch: x}, {self.branch: unlabelled}, iteration=self.iter
                )
                losses = model.run_terms(ctx)
                updated |= self._update(losses, log)
                self.iter += 1
            logits = None
            if ctx is not None and not updated and self.predict_with == 'student':
                # No weight changed: the terms' student forward of this batch is the prediction
                # (BN-adapt runs the network once).
                cached = ctx._student.get(self.branch)
                if cached is not None and model.test_cfg['mode'] == 'whole':
                    logits = cached['logits'].detach()
            if logits is None:
                logits = model.inference(x, self.predict_with)
        results = self._format(logits, samples)
        self._watch(logits, samples)
        self.seconds += time.perf_counter() - t0
        self.batches += 1
        self.images += len(samples)
        self.log = log
        return results

    def _update(self, losses: dict[str, Tensor], log: dict[str, float]) -> bool:
        model = self.model
        for k, v in losses.items():
            if v.numel() == 1:
                log[k] = float(v.detach())
        if not any('loss' in k for k in losses):
            return False
        parsed, _ = model.parse_losses(losses)
        model._check_finite(parsed, losses, self.iter)
        if not parsed.requires_grad:
            return False
        if self.optim_wrapper is None:
            raise ValueError(
                f'Test-time terms {list(losses)} give a loss but no optimiser is configured: set '
                "optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=...)) in "
                'the config.'
            )
        self.optim_wrapper.update_params(parsed)
        if self.restore_prob > 0:
            self._restore()
        for teacher in _teachers(model):
            if teacher.due(self.iter):
                teacher.update(model.student)  # EMATeacherHook.after_train_iter
        return True

    @staticmethod
    def _format(logits: Tensor, samples: list[dict]) -> list[dict[str, Any]]:
        results = []
        for i, sample in enumerate(samples):
            h, w = sample.get('img_shape', logits.shape[-2:])
            out = {k: v for k, v in sample.items() if k != 'gt_sem_seg'}
            out['pred_sem_seg'] = logits[i, :, :h, :w].argmax(0)
            if 'gt_sem_seg' in sample:
                out['gt_sem_seg'] = sample['gt_sem_seg'][:h, :w]
            results.append(out)
        return results

    def _watch(self, logits: Tensor, samples: list[dict], reference: bool = False) -> None:
        if self.guard is None:
            return
        valid = torch.zeros(len(samples), *logits.shape[-2:], dtype=torch.bool)
        for i, s in enumerate(samples):
            h, w = tuple(s.get('img_shape', logits.shape[-2:]))[:2]
            valid[i, :h, :w] = True
        # Probabilities (aug mode) and logits give the same arg-max; entropy from log-scores.
        scores = logits.float()
        if self.model.test_cfg['mode'] == 'aug':
            scores = scores.clamp(min=1e-12).log()
        stats = (scores.argmax(1).cpu(), valid, pixel_entropy(scores).detach().cpu())
        if reference:
            self.guard.reference(*stats)
            return
        reason = self.guard.observe(*stats)
        if reason is None:
            return
        self.reset()
        self.guard.restart()
        event = dict(batch=self.batches, image=self.images + len(samples), reason=reason)
        self.resets.append(event)
        print_log(
            f'Test-time adaptation collapsed at batch {self.batches} ({reason}): '
            'weights reset to the source model.',
            logger='current',
            level=logging.WARNING,
        )

    def summary(self) -> dict[str, Any]:
        """Cost and events of the stream so far: images, ms per image (adapt + predict), the
        torch thread count, collapse resets, and the peak CUDA memory when on a GPU."""
        out: dict[str, Any] = dict(
            trainable_params=sum(
                p.numel() for p in self.model.student.parameters() if p.requires_grad
            ),
            images=self.images,
            batches=self.batches,
            ms_per_image=1000.0 * self.seconds / max(self.images, 1),
            threads=torch.get_num_threads(),
            resets=list(self.resets),
            reset_mode=self.reset_mode,
        )
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out['cuda_peak_mib'] = torch.cuda.max_memory_allocated() / 2**20
        if self.guard is not None:
            out['guard'] = dict(self.guard.last)
        return {
            k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in out.items()
        }


@LOOPS.register_module()
class TestTimeAdaptLoop(TestLoop):
    """mmengine test loop that adapts on each batch before predicting it (:class:`TestTimeAdapter`).

    ``test_cfg=dict(type='TestTimeAdaptLoop', reset='continual', steps=1, norm=dict(
    prior_strength=0), predict_with='student', restore_prob=0.0, collapse_guard=None,
    optim_wrapper=dict(type='OptimWrapper', optimizer=...))``: the optimiser is part of the
    loop's settings (a top-level ``optim_wrapper`` would make the Runner expect training). The
    Runner loads ``load_from`` (the source checkpoint) before :meth:`run`. Hooks see the usual
    test events (``PredictionWriterHook`` writes the adapted predictions); after the stream,
    ``adapter`` holds the adapted weights and :attr:`summary` the cost and resets, which are
    also added to the metrics (``tta/ms_per_image``, ``tta/resets``).
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        optim_wrapper: Optional[dict] = None,
        **adapt: Any,
    ) -> None:
        super().__init__(runner, dataloader, evaluator)
        optim = None if optim_wrapper is None else dict(optim_wrapper)
        self.adapter = TestTimeAdapter(_unwrap(runner.model), optim, **adapt)
        self.summary: dict[str, Any] = {}

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.adapter.start()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        self.summary = self.adapter.summary()
        metrics['tta/ms_per_image'] = self.summary['ms_per_image']
        metrics['tta/resets'] = len(self.summary['resets'])
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def run_iter(self, idx: int, data_batch: Any) -> None:
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self.adapter.step(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs
        )


__all__ = [
    'CollapseGuard',
    'TestTimeAdaptLoop',
    'TestTimeAdapter',
    'prior_batch_norm',
]
