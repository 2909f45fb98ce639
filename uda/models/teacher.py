"""Momentum (EMA) teacher: a frozen copy of a network that follows it slowly.

Used by self-training methods (SAC, DACS, mean teacher) as the source of pseudo-labels and by
self-supervised pretraining as the momentum encoder; :class:`uda.engine.EMATeacherHook` drives
it from the Runner's loop (initialise at ``start_iter``, update after the optimiser step).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional

import torch
import torch.nn as nn
from torch import Tensor

from uda.models.batchnorm import batch_stats_untracked
from uda.registry import MODELS


def shared_frozen_tensors(network: nn.Module) -> list[Tensor]:
    """Tensors of ``network`` that never change in training: parameters with
    ``requires_grad=False`` and the buffers of the BatchNorm layers it keeps in eval mode
    because their parameters are frozen (``SMPSegmentor._frozen_norms``)."""
    out: list[Tensor] = [p for p in network.parameters() if not p.requires_grad]
    frozen_norms = getattr(network, '_frozen_norms', None)
    if callable(frozen_norms):
        out += [b for m in frozen_norms() for b in m.buffers()]
    return out


@MODELS.register_module()
class MomentumTeacher(nn.Module):
    """A frozen, eval-mode copy of ``network`` updated as ``m * teacher + (1 - m) * student``.

    The update runs over parameters and floating-point buffers (BN statistics, as SAC's
    visinf/da-sac ``models/sac.py`` ``_momentum_update``); integer buffers
    (``num_batches_tracked``) are copied. With ``ramp=True`` the momentum of the ``t``-th update
    (t = 0, 1, ...) is ``min(1 - 1 / (t + 1 + ramp_offset), momentum)``, so early teachers
    follow the student quickly: with ``ramp_offset=1`` the teacher after ``i`` optimiser steps
    is the mean of the students S0..Si, as DACS / DAFormer / MIC, whose update at iteration
    ``i`` uses ``min(1 - 1 / (i + 1), alpha)`` (lhoyer/MIC seg/mmseg/models/uda/dacs.py:122-135,
    316-321); with ``ramp_offset=0`` the first update copies S1 and S0 is lost.

    ``bn_mode`` chooses how the teacher's BatchNorm layers normalise: ``'eval'`` with their
    running statistics (the EMA of the student's, as SAC: visinf/da-sac models/sac.py), or
    ``'batch'`` with the statistics of the batch the teacher sees, as the DACS / DAFormer / MIC
    EMA model, which stays in train mode (only its dropout and drop-path are switched off
    before the pseudo-label forward: lhoyer/MIC seg/mmseg/models/uda/dacs.py:376-384). In
    ``'batch'`` mode the running statistics are left untouched (the reference's teacher updates
    its own; they are not read by its pseudo-labels). Dropout stays off in both modes.

    Args:
        network: The student network to copy (deep-copied; the teacher holds no reference).
        momentum: EMA momentum m (SAC 0.99 every 100 iterations; DAFormer 0.999 per step).
        interval: Update after every ``interval``-th optimiser step.
        start_iter: Iteration at which the teacher is initialised from the student.
        ramp: Use ``min(1 - 1 / (t + 1), momentum)``.
        momentum_end: With ``cosine_updates``, the momentum rises from ``momentum`` to this
            value along a half cosine over the first ``cosine_updates`` updates and stays
            there: ``m_t = end - (end - momentum) * (1 + cos(pi * t / T)) / 2``, DINO's teacher
            schedule 0.996 -> 1 (facebookresearch/dino main_dino.py ``momentum_schedule =
            cosine_scheduler(args.momentum_teacher, 1, epochs, len(data_loader))``).
        cosine_updates: T, the number of updates of the cosine schedule (0: constant momentum).
        ramp_offset: With ``ramp``, 1 counts the initial copy as a student (DACS / MIC), 0 not.
        bn_mode: ``'eval'`` (running statistics) or ``'batch'`` (each forward's batch
            statistics, DACS / MIC).
        share_frozen: The student's frozen parameters (``requires_grad=False``, e.g.
            ``segmentor.freeze=dict(encoder=True)`` or ``dict(stages=N)``) and the statistics
            of its frozen BatchNorm layers are not copied: the teacher holds the same tensors
            (:func:`shared_frozen_tensors`), which the EMA leaves alone. An EMA of a constant is
            the constant, so only the memory of a second copy changes.
    """

    BN_MODES = ('eval', 'batch')

    ready: Tensor
    updates: Tensor

    def __init__(
        self,
        network: nn.Module,
        momentum: float = 0.99,
        interval: int = 1,
        start_iter: int = 0,
        ramp: bool = False,
        momentum_end: Optional[float] = None,
        cosine_updates: int = 0,
        ramp_offset: int = 0,
        bn_mode: str = 'eval',
        share_frozen: bool = True,
    ) -> None:
        super().__init__()
        if bn_mode not in self.BN_MODES or int(ramp_offset) < 0:
            raise ValueError(
                f'MomentumTeacher(bn_mode={bn_mode!r}, ramp_offset={ramp_offset}): bn_mode must '
                f"be one of {self.BN_MODES} ('batch': DACS / MIC) and ramp_offset >= 0."
            )
        self.bn_mode, self.ramp_offset = bn_mode, int(ramp_offset)
        if int(cosine_updates) < 0 or (
            int(cosine_updates) > 0
            and (momentum_end is None or not 0.0 <= float(momentum_end) <= 1.0)
        ):
            raise ValueError(
                f'MomentumTeacher(momentum_end={momentum_end}, cosine_updates={cosine_updates}): '
                'a cosine schedule needs cosine_updates >= 1 and momentum_end in [0, 1], e.g. '
                "DINO's momentum=0.996, momentum_end=1.0, cosine_updates=<iterations>."
            )
        self.momentum_end = None if momentum_end is None else float(momentum_end)
        self.cosine_updates = int(cosine_updates)
        if not 0.0 <= float(momentum) <= 1.0 or int(interval) < 1 or int(start_iter) < 0:
            raise ValueError(
                f'MomentumTeacher(momentum={momentum}, interval={interval}, '
                f'start_iter={start_iter}): momentum must be in [0, 1], interval '
                '>= 1 and start_iter >= 0.'
            )
        self.momentum, self.interval = float(momentum), int(interval)
        self.start_iter, self.ramp = int(start_iter), bool(ramp)
        shared = shared_frozen_tensors(network) if share_frozen else []
        # deepcopy's memo maps an object to its copy: the frozen tensors map to themselves.
        self.net = copy.deepcopy(network, memo={id(t): t for t in shared})
        self.shared_frozen = len(shared)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.train(False)
        # Saved with checkpoints, so a resumed run neither re-initialises the teacher nor
        # restarts the momentum ramp.
        self.register_buffer('ready', torch.zeros((), dtype=torch.bool))
        self.register_buffer('updates', torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> 'MomentumTeacher':
        """The teacher always stays in eval mode (fixed BN statistics, no dropout)."""
        return super().train(False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            if self.bn_mode == 'eval':
                return self.net(*args, **kwargs)
            with batch_stats_untracked(self.net):
                return self.net(*args, **kwargs)

    def due(self, iteration: int) -> bool:
        """Whether the optimiser step of ``iteration`` is followed by an update."""
        return (
            bool(self.ready)
            and iteration >= self.start_iter
            and (iteration + 1 - self.start_iter) % self.interval == 0
        )

    @torch.no_grad()
    def init_from(self, network: nn.Module) -> None:
        """Copy ``network``'s weights and buffers into the teacher."""
        self.net.load_state_dict(network.state_dict())
        self.ready.fill_(True)
        self.updates.zero_()

    def momentum_now(self, momentum: Optional[float] = None) -> float:
        m = self.momentum if momentum is None else float(momentum)
        if self.cosine_updates > 0 and self.momentum_end is not None:
            t = min(int(self.updates), self.cosine_updates)
            end = self.momentum_end
            m = end - (end - m) * (1.0 + math.cos(math.pi * t / self.cosine_updates)) / 2.0
        if self.ramp:
            m = min(1.0 - 1.0 / (int(self.updates) + 1 + self.ramp_offset), m)
        return m

    @torch.no_grad()
    def update(self, network: nn.Module, momentum: Optional[float] = None) -> None:
        """``teacher = m * teacher + (1 - m) * network`` (see the class docstring)."""
        if not bool(self.ready):
            raise RuntimeError(
                'MomentumTeacher.update() before init_from(): the teacher is '
                'initialised at start_iter by EMATeacherHook.'
            )
        m = self.momentum_now(momentum)
        source = network.state_dict()
        for name, t in self.net.state_dict().items():
            s = source[name]
            if t.data_ptr() == s.data_ptr():  # a shared frozen tensor
                continue
            if t.dtype.is_floating_point:
                t.mul_(m).add_(s.detach().to(t.dtype), alpha=1.0 - m)
            else:
                t.copy_(s)
        self.updates += 1
