"""Every way uda changes how BatchNorm layers normalise or track statistics, in one module.

A training step, a teacher or a pretraining encoder sometimes needs BatchNorm to behave
otherwise for a while: forwards that must not move the running statistics (VAT's perturbed
forwards, the adapter's ``'frozen_stats'`` / ``'target_only'`` policies), a teacher that
normalises with batch statistics without tracking them (DACS / MIC), an eval-mode momentum
encoder that normalises with batch statistics (MoCo / DINO). Each is a context manager here, so
the state they change is restored in one place.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Union, cast

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

BN_MODES = ('train', 'target_only', 'frozen_stats', 'eval')


def bn_layers(module: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers of ``module`` that track running statistics."""
    return [
        m
        for m in module.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]


@contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Forwards inside leave the BN running statistics (and batch counters) of ``module`` as
    they were; BN still normalises with batch statistics in train mode (takerum/vat_tf
    ``vat.py`` ``update_batch_stats=False`` for the perturbed forwards)."""
    saved = [
        (m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
        for m in bn_layers(module)
    ]
    for m, _, _ in saved:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(count)


@contextmanager
def batch_stats_untracked(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` normalise with the statistics of the batch and neither
    read nor write their running buffers (training + no tracking), whatever the module's mode:
    the DACS / DAFormer / MIC EMA teacher, which stays in train mode (lhoyer/MIC
    seg/mmseg/models/uda/dacs.py:376-384)."""
    bns = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in bns]
    for m in bns:
        m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m, (training, track) in zip(bns, saved):
            m.training, m.track_running_stats = training, track


@contextmanager
def batch_norm_batch_stats(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of an eval-mode ``module`` in train mode (batch statistics, running
    statistics updated): MoCo's key encoder and DINO's teacher (facebookresearch/moco
    moco/builder.py never calls ``encoder_k.eval()``; facebookresearch/dino main_dino.py)."""
    bns = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    modes = [m.training for m in bns]
    for m in bns:
        m.train(True)
    try:
        yield
    finally:
        for m, mode in zip(bns, modes):
            m.train(mode)


class BatchNormPolicy:
    """The adapter's BatchNorm policy for the student during training steps.

    One mode or a list of ``dict(mode=..., start_iter=N[, branch='target'])`` phases. Modes:
    ``'train'`` (every forward updates the running statistics); ``'target_only'`` (adaptive BN:
    forwards normalise with batch statistics but only the student forward of ``branch``
    updates the running ones); ``'frozen_stats'`` (running statistics fixed, batch statistics
    in forwards); ``'eval'`` (BN in eval mode: running statistics used and fixed).

    The layers are looked up by name in every step: the Runner's ``sync_bn='torch'`` replaces
    them after the adapter is built.

    Args:
        student: The network whose BatchNorm layers follow the policy.
        policy: The mode(s), see above.
    """

    def __init__(self, student: nn.Module, policy: Union[str, dict, list]) -> None:
        self.phases = self.check(policy)
        bns = set(bn_layers(student))
        self._momentum_of = {n: m.momentum for n, m in student.named_modules() if m in bns}
        self.followed: Optional[str] = None  # the branch a 'target_only' step follows
        self.stats_done = False

    @staticmethod
    def check(policy: Union[str, dict, list]) -> list[dict]:
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

    def mode_at(self, iteration: int) -> dict:
        """The policy entry in force at ``iteration``."""
        current = dict(mode='train', start_iter=0, branch='target')
        for p in self.phases:
            if iteration >= p['start_iter']:
                current = p
        return current

    def momentum(self, student: nn.Module) -> dict[_BatchNorm, Optional[float]]:
        """The student's BatchNorm layers -> their configured momentum."""
        modules = dict(student.named_modules())
        return {
            cast(_BatchNorm, modules[n]): mom
            for n, mom in self._momentum_of.items()
            if n in modules
        }

    def _set_momentum(self, student: nn.Module, frozen: bool) -> None:
        for m, momentum in self.momentum(student).items():
            m.momentum = 0.0 if frozen else momentum

    @contextmanager
    def stats_from(self, student: nn.Module, branch: str) -> Iterator[None]:
        """Let this forward update the running statistics when ``branch`` is the one the
        'target_only' policy follows (every other forward leaves them alone)."""
        if self.followed is None or branch != self.followed:
            yield
            return
        self._set_momentum(student, frozen=False)
        try:
            yield
        finally:
            self._set_momentum(student, frozen=True)
            self.stats_done = True

    @contextmanager
    def applied(self, student: nn.Module, iteration: int) -> Iterator[None]:
        """The policy of ``iteration`` for the duration of one training step."""
        policy = self.mode_at(iteration)
        mode = policy['mode']
        bns = list(self.momentum(student))
        was_training = [m.training for m in bns]
        if mode in ('target_only', 'frozen_stats'):
            self._set_momentum(student, frozen=True)
        if mode == 'target_only':
            self.followed, self.stats_done = policy['branch'], False
        if mode == 'eval':
            for m in bns:
                m.eval()
        try:
            yield
        finally:
            self.followed = None
            self._set_momentum(student, frozen=False)
            for m, t in zip(bns, was_training):
                m.train(t)


__all__ = [
    'BN_MODES',
    'BatchNormPolicy',
    'batch_norm_batch_stats',
    'batch_stats_untracked',
    'bn_layers',
    'frozen_bn_stats',
]
