"""Mixed precision as one config switch: ``amp = 'bf16'`` / ``'fp16'`` (or ``--amp``).

On a GPU every optimiser wrapper of the config (the plain one, or each of
:class:`uda.engine.AdapterOptimWrapperConstructor`'s ``student`` / ``discriminators`` / ...)
becomes mmengine's ``AmpOptimWrapper`` with that ``dtype``. mmengine's wrapper asserts a GPU
when it is built, so on the CPU they become :class:`CPUAmpOptimWrapper`, the same contract
with ``torch.autocast('cpu')``. The adapter runs each phase inside its wrapper's
``optim_context`` (student terms under the student's, a discriminator's loss under its own), so
every term's forward is autocast; the terms compute their losses from ``logits.float()``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Union, cast

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from uda.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

# The switch's values -> torch dtype names (AmpOptimWrapper's ``dtype``).
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}
_CONVERTIBLE = ('OptimWrapper', 'AmpOptimWrapper', 'CPUAmpOptimWrapper')


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """mmengine's ``AmpOptimWrapper`` contract on the CPU: autocast forwards, scaled losses.

    uda differs from mmengine here: ``AmpOptimWrapper`` refuses to build without a GPU. bf16
    needs no loss scaling (its exponent range is fp32's), so it has none by default; fp16 uses
    ``torch.amp.GradScaler('cpu')`` (dynamic by default), as the GPU wrapper does.

    Args:
        dtype: 'bfloat16' (the CPU's native low precision with avx512_bf16 / AMX) or 'float16'.
        loss_scale: None (no scaling), 'dynamic', a float (static scale) or a dict of
            ``GradScaler`` arguments; default: None for bfloat16, 'dynamic' for float16.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``accumulative_counts``,
            ``clip_grad``).
    """

    def __init__(
        self,
        dtype: Union[str, torch.dtype] = 'bfloat16',
        loss_scale: Union[None, str, float, dict] = 'default',
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in ('bfloat16', 'float16'):
                raise ValueError(
                    f"CPUAmpOptimWrapper(dtype={dtype!r}): use 'bfloat16' or 'float16'."
                )
            dtype = getattr(torch, dtype)
        self.cast_dtype: torch.dtype = cast(torch.dtype, dtype)
        if loss_scale == 'default':
            loss_scale = 'dynamic' if dtype == torch.float16 else None
        self._scale_update_param: Optional[float] = None
        self.loss_scaler: Optional[torch.amp.GradScaler]
        if loss_scale is None:
            self.loss_scaler = None
        elif loss_scale == 'dynamic':
            self.loss_scaler = torch.amp.GradScaler('cpu')
        elif isinstance(loss_scale, float):
            self._scale_update_param = loss_scale
            self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=loss_scale)
        elif isinstance(loss_scale, dict):
            self.loss_scaler = torch.amp.GradScaler('cpu', **loss_scale)
        else:
            raise TypeError(
                f"CPUAmpOptimWrapper(loss_scale={loss_scale!r}): use None, 'dynamic', a float "
                'or a dict of torch.amp.GradScaler arguments.'
            )

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler = state_dict.pop('loss_scaler', None)
        if scaler is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler)
        if 'base_param_settings' in state_dict:
            self.base_param_settings = state_dict.pop('base_param_settings')
        self.optimizer.load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def _amp_wrapper(cfg: dict, where: str, dtype: str, cuda: bool) -> dict:
    kind = cfg.get('type', 'OptimWrapper')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    if name.split('.')[-1] not in _CONVERTIBLE:
        raise ValueError(
            f"amp: {where} is a {name!r}; the switch converts only 'OptimWrapper' configs. "
            f"Drop amp and set {where}.type='AmpOptimWrapper' (GPU) yourself."
        )
    # The scoped name: mmengine's DefaultOptimWrapperConstructor builds in its root registry.
    out = dict(cfg, type='AmpOptimWrapper' if cuda else 'uda.CPUAmpOptimWrapper', dtype=dtype)
    if not cuda:
        out.pop('use_fsdp', None)
    return out


def apply_amp(cfg: Config, amp: Optional[str] = None, cuda: Optional[bool] = None) -> None:
    """Turn every optimiser wrapper of ``cfg`` into a mixed-precision one, in place.

    Args:
        cfg: The training config; ``cfg.amp`` is read when ``amp`` is None.
        amp: 'bf16', 'fp16', or None / 'fp32' / '' (full precision: nothing changes).
        cuda: Build for the GPU (mmengine's ``AmpOptimWrapper``) or the CPU
            (:class:`CPUAmpOptimWrapper`); ``torch.cuda.is_available()`` when None.
    """
    mode = cfg.get('amp') if amp is None else amp
    if mode in (None, '', 'fp32', False):
        return
    if mode not in AMP_DTYPES:
        raise ValueError(
            f"amp={mode!r}: use 'bf16' or 'fp16' (or None for full precision), e.g. "
            '`tools/train.py CONFIG --amp bf16`.'
        )
    cfg.amp = mode
    cuda = torch.cuda.is_available() if cuda is None else cuda
    dtype = AMP_DTYPES[mode]
    optim = cfg.get('optim_wrapper')
    if not isinstance(optim, dict):
        raise KeyError(f'amp={mode!r} needs an optim_wrapper dict in the config.')
    constructor = optim.get('constructor')
    builder = OPTIM_WRAPPER_CONSTRUCTORS.get(constructor) if constructor is not None else None
    if getattr(builder, '__name__', '') == 'AdapterOptimWrapperConstructor':
        for name in list(optim):
            if name not in ('constructor', 'paramwise_cfg'):
                optim[name] = _amp_wrapper(optim[name], f'optim_wrapper.{name}', dtype, cuda)
    else:
        cfg.optim_wrapper = _amp_wrapper(optim, 'optim_wrapper', dtype, cuda)
