"""Distributed training: the adapter's data-parallel wrapper, and gloo when there is no GPU."""

from __future__ import annotations

import inspect
import os
from datetime import timedelta
from typing import Any, Callable, Iterable, Iterator, Optional, cast

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.parallel import DistributedDataParallel

from uda.registry import MODEL_WRAPPERS

Collective = Callable[[Tensor], Any]


def _buckets(tensors: Iterable[Tensor], cap_bytes: int) -> Iterator[list[Tensor]]:
    """Consecutive groups of same-device, same-dtype tensors of at most ``cap_bytes`` each
    (a single larger tensor is a bucket of its own); the order is the same on every rank."""
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for group in groups.values():
        bucket: list[Tensor] = []
        size = 0
        for t in group:
            nbytes = t.numel() * t.element_size()
            if bucket and size + nbytes > cap_bytes:
                yield bucket
                bucket, size = [], 0
            bucket.append(t)
            size += nbytes
        if bucket:
            yield bucket


def _coalesced(
    tensors: list[Tensor],
    collective: Collective,
    bucket_cap_mb: float,
    scale: Optional[float] = None,
) -> None:
    """Run ``collective`` in place on flattened buckets of ``tensors`` and write back,
    multiplied by ``scale`` when given."""
    for bucket in _buckets(tensors, int(bucket_cap_mb * 2**20)):
        flat = _flatten_dense_tensors(bucket)
        collective(flat)
        if scale is not None:
            flat.mul_(scale)
        for t, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            t.copy_(synced)


def average_gradients(
    params: Iterable[Tensor],
    world_size: Optional[int] = None,
    all_reduce: Collective = dist.all_reduce,
    bucket_cap_mb: float = 25.0,
) -> None:
    """Replace each parameter's ``.grad`` by its mean over the ranks.

    Parameters with ``requires_grad=False`` are skipped. A parameter without a gradient on
    this rank but with one on another rank (e.g. a branch only some ranks' data reached)
    counts as a zero gradient here; one without a gradient on every rank keeps ``grad=None``,
    so the optimiser skips it as it would in a single process. Every rank must pass the same
    parameters in the same order.

    Args:
        params: Parameters (duplicates are reduced once).
        world_size: Number of ranks; the default process group's size when None.
        all_reduce: In-place sum over ranks of one tensor (``torch.distributed.all_reduce``).
        bucket_cap_mb: Gradients are flattened into buckets of this size, one collective each.
    """
    seen: set[int] = set()
    todo = []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            todo.append(p)
    world_size = dist.get_world_size() if world_size is None else int(world_size)
    if not todo or world_size == 1:
        return
    has_grad = torch.tensor([float(p.grad is not None) for p in todo], device=todo[0].device)
    all_reduce(has_grad)
    grads = []
    for p, n in zip(todo, has_grad.tolist()):
        if n == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        elif p.grad.is_sparse:
            raise TypeError(
                'average_gradients: sparse gradients are not supported; use dense '
                'embeddings (sparse=False).'
            )
        grads.append(p.grad)
    _coalesced(grads, all_reduce, bucket_cap_mb, scale=1.0 / world_size)


@MODEL_WRAPPERS.register_module()
class AdapterDataParallel(nn.Module):
    """Data-parallel training of an :class:`uda.methods.Adapter` with its own train step.

    mmengine's ``MMDistributedDataParallel.train_step`` runs one forward and one
    ``update_params`` of its own and bypasses ``Adapter.train_step``, so the two-optimiser
    step of adversarial terms fails, and torch's DDP reducer expects one forward of the
    wrapped module per backward while terms call the student several times per step (source,
    target, adaptive BN). This wrapper uses no reducer. On every rank it runs
    ``Adapter.train_step(data, optim_wrapper, grad_sync=...)``; each optimiser wrapper (the
    student's, then the discriminators') averages the gradients of the parameters it holds over
    the ranks between its backward pass and its step, and only when it steps (gradient
    accumulation), so AMP's inf check and gradient clipping see the averaged gradients and
    agree on every rank. After the step the floating-point buffers (BatchNorm running
    statistics, SAC's class prior) are averaged over the ranks and the others (counters) are
    copied from rank 0, so every rank validates and checkpoints the same model. Parameters and
    buffers are broadcast from rank 0 when wrapping.

    Names listed in the module's ``_ddp_params_and_buffers_to_ignore`` (the momentum teacher)
    are never communicated: ``EMATeacherHook`` updates the teacher identically on every rank
    from the identical student.

    Args:
        module: The adapter; its ``train_step`` must accept ``grad_sync``.
        bucket_cap_mb: Tensors are flattened into buckets of this size, one collective each.
        average_buffers: Average float buffers (and copy the rest from rank 0) after every
            step; False leaves each rank with its own BatchNorm statistics, like
            ``MMDistributedDataParallel(broadcast_buffers=False)``.
    """

    module: Any  # the adapter (its own train_step with grad_sync)

    def __init__(
        self, module: nn.Module, bucket_cap_mb: float = 25.0, average_buffers: bool = True
    ) -> None:
        super().__init__()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                'AdapterDataParallel needs an initialised process group: launch '
                'with torchrun and `tools/train.py --launcher pytorch`.'
            )
        if 'grad_sync' not in inspect.signature(cast(Any, module).train_step).parameters:
            raise TypeError(
                f'AdapterDataParallel wraps models whose train_step(data, '
                f'optim_wrapper, grad_sync) runs the optimiser steps; '
                f'{type(module).__name__} has none: use model_wrapper_cfg='
                "dict(type='MMDistributedDataParallel')."
            )
        self.module = module
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.average_buffers = average_buffers
        self.world_size = dist.get_world_size()
        self._ignore = set(getattr(module, '_ddp_params_and_buffers_to_ignore', ()))
        with torch.no_grad():
            self._broadcast(
                [p.data for n, p in module.named_parameters() if n not in self._ignore]
                + self._synced_buffers()
            )

    def _synced_buffers(self) -> list[Tensor]:
        # Looked up every time: adaptive BN swaps in new buffer tensors.
        return [b for n, b in self.module.named_buffers() if n not in self._ignore]

    def _broadcast(self, tensors: list[Tensor]) -> None:
        _coalesced(tensors, lambda t: dist.broadcast(t, src=0), self.bucket_cap_mb)

    def sync_gradients(self, optim_wrapper: OptimWrapper) -> None:
        """Average the gradients of every parameter ``optim_wrapper`` steps over the ranks."""
        params = [p for group in optim_wrapper.optimizer.param_groups for p in group['params']]
        average_gradients(params, self.world_size, bucket_cap_mb=self.bucket_cap_mb)

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Average float buffers over the ranks; copy the others from rank 0."""
        buffers = self._synced_buffers()
        floats = [b for b in buffers if b.dtype.is_floating_point]
        _coalesced(floats, dist.all_reduce, self.bucket_cap_mb, scale=1.0 / self.world_size)
        self._broadcast([b for b in buffers if not b.dtype.is_floating_point])

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, Tensor]:
        log_vars = self.module.train_step(data, optim_wrapper, grad_sync=self.sync_gradients)
        if self.average_buffers:
            self.sync_buffers()
        return log_vars

    def val_step(self, data: Any) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        return self.module.test_step(data)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


def prepare_distributed(cfg: Config) -> None:
    """Choose the model wrapper of a distributed run and initialise gloo without CUDA.

    Under any launcher an ``Adapter`` is wrapped in :class:`AdapterDataParallel` unless
    ``model_wrapper_cfg`` names another wrapper. mmengine's ``pytorch`` launcher calls
    ``torch.cuda.set_device``, which fails on a machine without a GPU; the Runner skips its
    own initialisation when a process group exists, so initialising gloo first is enough (a
    torch DDP wrapper then needs ``device_ids=None``, a CPU module).

    ``sync_bn='torch'`` (read by the Runner, which converts the model's BatchNorm layers to
    ``torch.nn.SyncBatchNorm`` before wrapping it in a distributed run) is checked here: it
    needs CUDA.
    """
    launcher = cfg.get('launcher', 'none')
    sync_bn = cfg.get('sync_bn')
    if sync_bn is not None and sync_bn != 'torch':
        raise ValueError(
            f"sync_bn={sync_bn!r}: use sync_bn='torch' (torch.nn.SyncBatchNorm) or drop it."
        )
    if sync_bn and launcher != 'none' and not torch.cuda.is_available():
        raise RuntimeError(
            "sync_bn='torch' needs GPUs: torch's SyncBatchNorm trains only on CUDA tensors. "
            'On the CPU drop sync_bn; AdapterDataParallel averages the BatchNorm statistics '
            'over the ranks after every step.'
        )
    if launcher == 'none':
        return
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if cfg.get('model', {}).get('type') == 'Adapter':
        wrapper.setdefault('type', 'AdapterDataParallel')
    if launcher == 'pytorch' and not torch.cuda.is_available():
        if not dist.is_initialized():
            # Every collective waits at most env_cfg.dist_cfg.timeout seconds (mmengine's key,
            # which its NCCL path reads too): a rank that hangs stops the others with an error
            # naming it (uda.engine.rank_failure) instead of blocking them for gloo's 30 minutes.
            timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
            dist.init_process_group(
                backend='gloo',
                rank=int(os.environ['RANK']),
                world_size=int(os.environ['WORLD_SIZE']),
                timeout=None if timeout is None else timedelta(seconds=float(timeout)),
            )
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        if issubclass(MODEL_WRAPPERS.get(wrapper['type']) or object, DistributedDataParallel):
            wrapper.setdefault('device_ids', None)
    name = wrapper.get('type')
    if isinstance(name, str) and name in MODEL_WRAPPERS.module_dict:
        # The Runner looks the type up in mmengine's root registry, which finds uda's
        # wrappers only by their scoped name.
        wrapper['type'] = f'uda.{name}'
    if wrapper:
        cfg.model_wrapper_cfg = wrapper
