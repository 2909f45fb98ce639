"""Activation checkpointing of a segmentor's encoder: keep only stage (or block) inputs in the
forward and recompute the rest during the backward pass, trading compute for memory.

timm encoders (``tu-*`` feature networks and plain ViTs) use timm's own
``set_grad_checkpointing`` (huggingface/pytorch-image-models ``timm/models/_features.py``
``FeatureListNet._collect``, ``timm/models/vision_transformer.py`` ``forward_intermediates``:
every block through ``torch.utils.checkpoint``). smp's ResNet encoders checkpoint each residual
stage (``layer1`` .. ``layer4``) and smp's Mix Transformer (SegFormer / DAFormer MiT-B*) each
transformer block, by giving those modules a forward that runs through
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``; names, parameters and checkpoints
are unchanged.

Recomputing a BatchNorm layer in training mode would update its running statistics a second
time; every BatchNorm layer of a checkpointed encoder therefore leaves its statistics and
``num_batches_tracked`` alone while the autograd engine recomputes it (the recomputation runs
inside the backward pass, the original forward never does), so the statistics equal those of
the network without checkpointing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

_CLASSES: dict[type, type] = {}
_FULL: dict[type, type] = {}


def _in_backward() -> bool:
    """True while the autograd engine runs a backward pass (where checkpoints recompute)."""
    return torch._C._current_graph_task_id() != -1


def _full_recompute_class(cls: type) -> type:
    """``cls`` with a forward under ``set_checkpoint_early_stop(False)``: checkpoints made in
    it recompute their whole function, so the BatchNorm hooks below always see the end of a
    recomputation (with early stopping, torch stops once the saved tensors are rebuilt)."""
    if cls in _FULL.values():
        return cls
    if cls not in _FULL:

        def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
            with set_checkpoint_early_stop(False):
                return super(new, self).forward(*args, **kwargs)  # type: ignore[arg-type]

        new = type(cls.__name__, (cls,), {'forward': forward})
        new.__module__ = cls.__module__
        _FULL[cls] = new
    return _FULL[cls]


def _checkpointed_class(cls: type) -> type:
    """``cls`` with a forward that runs the original through ``torch.utils.checkpoint``
    whenever gradients are recorded (cached, so every instance of a class shares one)."""
    if cls in _CLASSES.values():  # already checkpointed
        return cls
    if cls not in _CLASSES:

        def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
            run = super(new, self).forward  # type: ignore[arg-type]
            if not torch.is_grad_enabled():
                return run(*args, **kwargs)
            return checkpoint(run, *args, use_reentrant=False, **kwargs)

        new = type(f'Checkpointed{cls.__name__}', (cls,), {'forward': forward})
        new.__module__ = cls.__module__
        _CLASSES[cls] = new
    return _CLASSES[cls]


def _bn_pre(module: _BatchNorm, args: Any) -> None:
    if module.training and _in_backward():
        module._uda_momentum = module.momentum  # type: ignore[assignment]
        module.momentum = 0.0


def _bn_post(module: _BatchNorm, args: Any, out: Any) -> None:
    if hasattr(module, '_uda_momentum'):
        module.momentum = module.__dict__.pop('_uda_momentum')
        if module.num_batches_tracked is not None:
            module.num_batches_tracked.sub_(1)


def enable_activation_checkpointing(encoder: nn.Module) -> list[str]:
    """Checkpoint ``encoder``'s stages or blocks; return what is checkpointed (names).

    Raises:
        ValueError: For an encoder with neither timm's ``set_grad_checkpointing`` nor a stage
            layout known here (smp ResNet / ResNeXt, Mix Transformer).
    """
    names: list[str] = []
    model = getattr(encoder, 'model', None)
    if model is not None and hasattr(model, 'set_grad_checkpointing'):
        model.set_grad_checkpointing(True)  # timm: tu-* feature networks and ViTs
        names = ['model (timm set_grad_checkpointing)']
    elif all(hasattr(encoder, f'layer{i}') for i in range(1, 5)):  # smp ResNet / ResNeXt
        for i in range(1, 5):
            stage = getattr(encoder, f'layer{i}')
            stage.__class__ = _checkpointed_class(type(stage))
            names.append(f'layer{i}')
    elif all(hasattr(encoder, f'block{i}') for i in range(1, 5)):  # smp Mix Transformer
        for i in range(1, 5):
            for j, block in enumerate(getattr(encoder, f'block{i}')):
                block.__class__ = _checkpointed_class(type(block))
                names.append(f'block{i}.{j}')
    else:
        raise ValueError(
            f'segmentor.activation_checkpointing: no checkpointing for the '
            f'{type(encoder).__name__} encoder; it is available for timm encoders (tu-*, ViTs), '
            "smp's ResNet / ResNeXt and Mix Transformer (mit_b*) encoders."
        )
    encoder.__class__ = _full_recompute_class(type(encoder))
    for m in encoder.modules():
        if isinstance(m, _BatchNorm):
            m.register_forward_pre_hook(_bn_pre)
            m.register_forward_hook(_bn_post)
    return names
