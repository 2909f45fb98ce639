"""One optimiser for the segmentor and one for the discriminators of adversarial terms."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from uda.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class AdapterOptimWrapperConstructor:
    """Build ``OptimWrapperDict(student=..., discriminators=...)`` for an ``Adapter``.

    mmengine has no generic multi-optimiser constructor: the Runner hands the whole
    ``optim_wrapper`` dict to the named constructor. This one builds

    - ``student``: the wrapper config applied to ``model.student`` (``paramwise_cfg`` applies
      here, parameter names relative to the student);
    - ``discriminators``: the wrapper config applied to the discriminators of every term that
      owns one (``terms.<i>.discriminator``), so the student optimiser never holds them.

    Every trainable parameter of the adapter must land in exactly one of the two, otherwise
    building fails with the names that are left over. Schedules: a plain ``param_scheduler``
    list applies to both wrappers; ``param_scheduler=dict(student=[...],
    discriminators=[...])`` gives each its own.

    Args:
        optim_wrapper_cfg: ``dict(student=dict(type='OptimWrapper', optimizer=...),
            discriminators=dict(type='OptimWrapper', optimizer=...))``; each wrapper may be
            an ``AmpOptimWrapper`` and carry ``accumulative_counts`` / ``clip_grad``.
        paramwise_cfg: Passed to the student's ``DefaultOptimWrapperConstructor``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        cfg = dict(optim_wrapper_cfg)
        unknown = set(cfg) - {'student', 'discriminators'}
        if 'student' not in cfg or unknown:
            raise KeyError(
                "AdapterOptimWrapperConstructor expects optim_wrapper=dict(constructor=..., "
                "student=dict(type='OptimWrapper', optimizer=...), discriminators=dict(...)); "
                f'got keys {sorted(cfg)}.')
        self.student_cfg = cfg['student']
        self.disc_cfg = cfg.get('discriminators')
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        wrappers = dict(student=DefaultOptimWrapperConstructor(
            self.student_cfg, self.paramwise_cfg)(model.student))
        owners = [t for t in getattr(model, 'terms', []) if t.owns_discriminator]
        if owners and self.disc_cfg is None:
            raise KeyError(f'Terms {[type(t).__name__ for t in owners]} own discriminators: add '
                           "optim_wrapper.discriminators=dict(type='OptimWrapper', optimizer="
                           "dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))).")
        if owners:
            discs = nn.ModuleList([t.discriminator for t in owners])
            wrappers['discriminators'] = DefaultOptimWrapperConstructor(self.disc_cfg)(discs)
        elif self.disc_cfg is not None:
            raise ValueError('optim_wrapper.discriminators is set but no term owns a '
                             'discriminator; drop it (or add an adversarial term).')
        covered = {id(p) for w in wrappers.values() for g in w.optimizer.param_groups
                   for p in g['params']}
        left = [n for n, p in model.named_parameters()
                if p.requires_grad and id(p) not in covered and not n.startswith('teacher.')]
        if left:
            more = ' ...' if len(left) > 5 else ''
            raise ValueError(f'Parameters in no optimiser: {left[:5]}{more}. '
                             'AdapterOptimWrapperConstructor optimises model.student and term '
                             'discriminators only; freeze other parameters or move them there.')
        return OptimWrapperDict(**wrappers)
