"""One optimiser wrapper per optimiser name the adapter's terms declare ('student' first)."""

from __future__ import annotations

from typing import Any, Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict

from uda.models.encoder_stages import encoder_stage_ids
from uda.registry import OPTIM_WRAPPER_CONSTRUCTORS


def layer_decay_custom_keys(
    segmentor: nn.Module,
    rate: float,
    prefix: str = 'student',
    custom_keys: Optional[dict] = None,
) -> dict:
    """``paramwise_cfg.custom_keys`` giving encoder stage i the lr ``base_lr * rate ** (N - i)``.

    Layer-wise learning-rate decay (BEiT, arXiv:2106.08254; MAE fine-tuning
    facebookresearch/mae util/lr_decay.py ``param_groups_lrd``: scale ``decay ** (num_layers
    - layer_id)``): stage ids and N from :func:`uda.models.encoder_stages.encoder_stage_ids`,
    so the stem / embeddings get ``rate ** N`` and the decoder and heads the base lr. One key
    per encoder parameter (its full name), so mmengine's substring matching cannot mix
    stages up (``blocks.1.`` is no substring of ``blocks.11.``, but a shorter key could be);
    a user key that also matches the parameter keeps its options and multiplies its lr_mult.
    """
    if not 0.0 < float(rate) <= 1.0:
        raise ValueError(f'paramwise_cfg.layer_decay.rate={rate} must be in (0, 1].')
    encoder = getattr(getattr(segmentor, 'net', None), 'encoder', None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f'paramwise_cfg.layer_decay needs an SMPSegmentor student (net.encoder); got '
            f'{type(segmentor).__name__}. Drop layer_decay for this network.'
        )
    ids, num_stages = encoder_stage_ids(encoder)
    user = dict(custom_keys or {})
    by_length = sorted(sorted(user), key=len, reverse=True)
    out = dict(user)
    head = f'{prefix}.net.encoder.' if prefix else 'net.encoder.'
    for name, stage in ids.items():
        full = head + name
        opts = next((dict(user[k]) for k in by_length if k in full), {})
        opts['lr_mult'] = opts.get('lr_mult', 1.0) * float(rate) ** (num_stages - stage)
        out[full] = opts
    return out


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


def _pop_layer_decay(paramwise_cfg: Optional[dict]) -> tuple[Optional[dict], Optional[dict]]:
    """Split ``paramwise_cfg`` into mmengine's keys and uda's ``layer_decay=dict(rate=...)``."""
    if not paramwise_cfg or 'layer_decay' not in paramwise_cfg:
        return paramwise_cfg, None
    paramwise = dict(paramwise_cfg)
    decay = dict(paramwise.pop('layer_decay'))
    if set(decay) != {'rate'}:
        raise ValueError(
            f'paramwise_cfg.layer_decay={decay}: give exactly rate=<decay>, e.g. '
            'layer_decay=dict(rate=0.65).'
        )
    return paramwise, decay


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus ``paramwise_cfg.layer_decay=dict(rate=...)``.

    For configs with one plain ``optim_wrapper`` (``dict(type='OptimWrapper', ...)``): set
    ``constructor='LayerDecayOptimWrapperConstructor'``. The student's encoder stages get
    :func:`layer_decay_custom_keys`; ``AdapterOptimWrapperConstructor`` reads the same key.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise, self.layer_decay = _pop_layer_decay(paramwise_cfg)
        super().__init__(optim_wrapper_cfg, paramwise)

    def __call__(self, model: nn.Module) -> Any:
        net: Any = model.module if is_model_wrapper(model) else model
        if self.layer_decay is not None:
            student = getattr(net, 'student', net)
            prefix = 'student' if student is not net else ''
            paramwise: dict = dict(getattr(self, 'paramwise_cfg', None) or {})
            paramwise['custom_keys'] = layer_decay_custom_keys(
                student, self.layer_decay['rate'], prefix, paramwise.get('custom_keys')
            )
            self.paramwise_cfg = paramwise
        return super().__call__(net)


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
        paramwise_cfg: Passed to the student's ``DefaultOptimWrapperConstructor``. Its own
            key ``layer_decay=dict(rate=0.65)`` adds layer-wise lr decay over the student's
            encoder stages (:func:`layer_decay_custom_keys`; decoder and heads at base lr).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg, self.layer_decay = _pop_layer_decay(paramwise_cfg)
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
            if name == 'student' and self.layer_decay is not None:
                paramwise = dict(paramwise or {})
                paramwise['custom_keys'] = layer_decay_custom_keys(
                    model.student, self.layer_decay['rate'], 'student', paramwise.get('custom_keys')
                )
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
