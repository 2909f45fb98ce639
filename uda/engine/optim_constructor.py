"""One optimiser wrapper per optimiser name the adapter's terms declare ('student' first)."""

from __future__ import annotations

from typing import Any, Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from uda.registry import OPTIM_WRAPPER_CONSTRUCTORS


def _group(modules: list[tuple[str, nn.Module]]) -> nn.Module:
    """A container holding ``modules`` under their adapter names (``student``,
    ``terms.<name>.<attr>``), so ``paramwise_cfg`` keys see the names users see in
    checkpoints."""
    root: nn.Module = nn.Module()
    for path, module in modules:
        parent = root
        *heads, last = path.split('.')
        for part in heads:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]  # type: ignore[assignment]
        parent.add_module(last, module)
    return root


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class AdapterOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` for an ``Adapter`` from the optimisers its terms declare.

    mmengine has no generic multi-optimiser constructor: the Runner hands the whole
    ``optim_wrapper`` dict to the named constructor. This one builds

    - ``student``: the student plus every module a term declares under 'student' (a
      classification or projection head trained by the same loss); ``paramwise_cfg`` applies
      here, keys matched against ``student.<...>`` / ``terms.<name>.<...>`` names;
    - one wrapper per other declared name (``discriminators`` of the adversarial terms ...),
      each over the modules the terms declare under it; the adapter steps it in its own
      phase after the student's.

    Every trainable parameter of the adapter must land in exactly one wrapper, and every
    wrapper config must be used, otherwise building fails with the names that are wrong.
    Schedules: a plain ``param_scheduler`` list applies to every wrapper;
    ``param_scheduler=dict(student=[...], discriminators=[...])`` gives each its own.

    Args:
        optim_wrapper_cfg: ``dict(student=dict(type='OptimWrapper', optimizer=...),
            discriminators=dict(...), ...)``; each may be an ``AmpOptimWrapper`` and carry
            ``accumulative_counts`` / ``clip_grad``.
        paramwise_cfg: Passed to the student's ``DefaultOptimWrapperConstructor``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        cfg = dict(optim_wrapper_cfg)
        if 'student' not in cfg or 'optimizer' in cfg:
            raise KeyError(
                'AdapterOptimWrapperConstructor expects optim_wrapper=dict(constructor=..., '
                "student=dict(type='OptimWrapper', optimizer=...), <name>=dict(...) for each "
                f'optimiser the terms declare, e.g. discriminators); got keys {sorted(cfg)}.'
            )
        self.cfgs = cfg
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: Any) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        declared = model.declared_optimisers()
        missing = [n for n in declared if n not in self.cfgs]
        if missing:
            owners = [
                f'terms.{t}'
                for t, term in model.terms.items()
                if set(term.optimised_modules()) & set(missing)
            ]
            raise KeyError(
                f'{owners} declare optimiser(s) {missing}: add optim_wrapper.'
                f"{missing[0]}=dict(type='OptimWrapper', optimizer=dict(type="
                "'Adam', lr=1e-4, betas=(0.9, 0.99))) (or the optimiser you want)."
            )
        unused = [n for n in self.cfgs if n not in declared]
        if unused:
            raise ValueError(
                f'optim_wrapper.{unused[0]} is set but no term declares an '
                f'optimiser of that name (declared: {list(declared)}); drop it.'
            )
        wrappers = {}
        for name, modules in declared.items():
            if name == 'student':
                modules = [('student', model.student), *modules]
            paramwise = self.paramwise_cfg if name == 'student' else None
            wrappers[name] = DefaultOptimWrapperConstructor(self.cfgs[name], paramwise)(
                _group(modules)
            )
        covered = {
            id(p) for w in wrappers.values() for g in w.optimizer.param_groups for p in g['params']
        }
        left = [
            n
            for n, p in model.named_parameters()
            if p.requires_grad and id(p) not in covered and not n.startswith('teacher.')
        ]
        if left:
            more = ' ...' if len(left) > 5 else ''
            raise ValueError(
                f'Parameters in no optimiser: {left[:5]}{more}. A term must '
                'declare its trainable modules in optimised_modules(); freeze '
                'other parameters.'
            )
        return OptimWrapperDict(**wrappers)
