"""Distributed training: the adapter's data-parallel wrapper, and gloo when there is no GPU."""

from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
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


# torch DDP's first bucket is small, so the first all-reduce starts early in the backward pass
# (torch/nn/parallel/distributed.py, dist._DEFAULT_FIRST_BUCKET_BYTES).
FIRST_BUCKET_MB = 1.0


class _Bucket:
    """Gradients of some parameters, copied into one flat buffer and all-reduced together.

    The buffer is allocated once and reused every step, as torch DDP's reducer keeps its
    buckets: a fresh tens-of-MiB tensor per step costs page faults (measured 10 % of a
    2-process CPU step). The copy in is multiplied by ``1 / world size`` (DDP's division
    before the all-reduce), so the reduced buffer is already the average.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.pending = len(params)  # gradients not yet final in this backward pass
        self.flat: Optional[Tensor] = None
        self.views: list[Tensor] = []  # one view of ``flat`` per parameter, shaped like it
        self.work: Any = None
        self.late = False  # a gradient changed after the bucket was launched

    def reset(self) -> None:
        self.pending, self.work, self.late = len(self.params), None, False

    def launch(self, all_reduce: Callable[..., Any], scale: float) -> None:
        if self.flat is None:
            first = self.params[0]
            self.flat = torch.empty(
                sum(p.numel() for p in self.params), dtype=first.dtype, device=first.device
            )
            offsets = [0]
            for p in self.params:
                offsets.append(offsets[-1] + p.numel())
            self.views = [
                self.flat[a:b].view_as(p) for p, a, b in zip(self.params, offsets, offsets[1:])
            ]
        for p, view in zip(self.params, self.views):
            if p.grad is None:
                view.zero_()
            elif p.grad.is_sparse:
                raise TypeError(
                    'AdapterDataParallel: sparse gradients are not supported; use dense '
                    'embeddings (sparse=False).'
                )
            else:
                torch.mul(p.grad, scale, out=view)
        self.work = all_reduce(self.flat, async_op=True)


class _PhaseBuckets:
    """The buckets of one optimiser wrapper's parameters, in reverse registration order (the
    order in which the backward pass roughly finishes their gradients, as torch DDP's reducer
    assumes), launched strictly in index order so every rank issues the same collectives."""

    def __init__(self, params: list[Tensor], cap_mb: float) -> None:
        self.key = tuple(id(p) for p in params)
        self.params = params
        order = list(reversed(params))
        first_mb = min(FIRST_BUCKET_MB, cap_mb)
        first = next(_buckets(order, int(first_mb * 2**20)), []) if order else []
        taken = {id(p) for p in first}
        rest = [p for p in order if id(p) not in taken]
        groups = ([first] if first else []) + list(_buckets(rest, int(cap_mb * 2**20)))
        self.buckets = [_Bucket(g) for g in groups]
        self.bucket_of = {id(p): i for i, g in enumerate(groups) for p in g}
        self.launched = 0
        self.fired: set[int] = set()

    def reset(self) -> None:
        for b in self.buckets:
            b.reset()
        self.launched = 0
        self.fired = set()

    def ready(self, p: Tensor, all_reduce: Callable[..., Any], scale: float) -> None:
        """``p``'s gradient is final for this backward pass: launch what is complete."""
        i = self.bucket_of.get(id(p))
        if i is None:
            return
        if id(p) in self.fired:  # accumulated again (e.g. a reentrant checkpoint)
            if i < self.launched:
                self.buckets[i].late = True
            return
        self.fired.add(id(p))
        self.buckets[i].pending -= 1
        while self.launched < len(self.buckets) and self.buckets[self.launched].pending == 0:
            self.buckets[self.launched].launch(all_reduce, scale)
            self.launched += 1


class GradientSync:
    """What :class:`AdapterDataParallel` gives ``Adapter.train_step`` as ``grad_sync``.

    Called with an optimiser wrapper before its step, it averages that wrapper's gradients over
    the ranks. The adapter runs the last backward pass of a phase that steps inside
    :meth:`launch_during`: then every parameter's post-accumulate-gradient hook marks its
    gradient final, and each bucket whose gradients are all final is all-reduced
    asynchronously while the backward pass goes on (torch DDP's overlap of communication with
    computation, pytorch/pytorch ``torch/csrc/distributed/c10d/reducer.cpp``
    ``mark_variable_ready`` / ``mark_bucket_ready``). ``__call__`` launches the rest and waits
    for all, so AMP's inf check and gradient clipping see the averaged gradients.
    """

    def __init__(self, wrapper: 'AdapterDataParallel') -> None:
        self.wrapper = wrapper

    def __call__(self, optim_wrapper: OptimWrapper) -> None:
        self.wrapper.sync_gradients(optim_wrapper)

    @contextmanager
    def launch_during(self, optim_wrapper: OptimWrapper) -> Iterator[None]:
        """Launch the all-reduce of each bucket as soon as its gradients are final."""
        wrapper = self.wrapper
        if not wrapper.overlap:
            yield
            return
        phase = wrapper._phase(optim_wrapper)
        phase.reset()
        wrapper._armed = phase
        try:
            yield
        finally:
            wrapper._armed = None


@MODEL_WRAPPERS.register_module()
class AdapterDataParallel(nn.Module):
    """Data-parallel training of an :class:`uda.methods.Adapter` with its own train step.

    mmengine's ``MMDistributedDataParallel.train_step`` runs one forward and one
    ``update_params`` of its own and bypasses ``Adapter.train_step``, so the two-optimiser
    step of adversarial terms fails, and torch's DDP reducer expects one forward of the
    wrapped module per backward while terms call the student several times per step (source,
    target, adaptive BN). This wrapper has its own reducer. On every rank it runs
    ``Adapter.train_step(data, optim_wrapper, grad_sync=GradientSync(self))``; each optimiser
    wrapper (the student's, then the discriminators') averages the gradients of the parameters
    it holds over the ranks between its backward pass and its step, and only when it steps
    (gradient accumulation). With ``overlap`` (the default) the averaging starts during the
    phase's last backward pass: bucketed asynchronous all-reduces launched from the
    parameters' gradient hooks (:class:`GradientSync`), awaited before the step; without it
    all buckets are reduced after the backward pass. A parameter without a gradient on some
    ranks counts as zero there; one without a gradient on every rank keeps ``grad=None``.

    Floating-point buffers (BatchNorm running statistics, SAC's class prior) are averaged over
    the ranks every ``buffer_sync_interval`` steps; before validation, testing and checkpoints
    (:class:`SyncBuffersHook`, which ``prepare_distributed`` adds) they are averaged and the
    others (counters) copied from rank 0, so every rank validates and saves the same model.
    BatchNorm's running statistics are linear in their past values, so averaging them every
    N steps gives the statistics of averaging every step; buffers that the step itself reads
    (a class prior, or the teacher's statistics between syncs) differ between the ranks until
    the next sync. With an interval above 1 the teacher's float buffers are averaged too, as
    the teacher's BatchNorm EMA follows each rank's own statistics between syncs.
    Parameters and buffers are broadcast from rank 0 when wrapping.

    Names listed in the module's ``_ddp_params_and_buffers_to_ignore`` (the momentum teacher)
    are not communicated otherwise: ``EMATeacherHook`` updates the teacher identically on every
    rank from the identical student.

    Args:
        module: The adapter; its ``train_step`` must accept ``grad_sync``.
        bucket_cap_mb: Gradients are flattened into buckets of this size, one collective each
            (the first bucket of a phase 1 MiB, as torch DDP's).
        average_buffers: Average float buffers (and copy the rest from rank 0); False leaves
            each rank with its own BatchNorm statistics, like
            ``MMDistributedDataParallel(broadcast_buffers=False)``.
        overlap: Launch the all-reduces from gradient hooks during the backward pass.
        buffer_sync_interval: Average the buffers after every N-th training step.
    """

    module: Any  # the adapter (its own train_step with grad_sync)

    def __init__(
        self,
        module: nn.Module,
        bucket_cap_mb: float = 25.0,
        average_buffers: bool = True,
        overlap: bool = True,
        buffer_sync_interval: int = 1,
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
        if int(buffer_sync_interval) < 1:
            raise ValueError(
                f'AdapterDataParallel(buffer_sync_interval={buffer_sync_interval}): give 1 '
                '(every step) or more.'
            )
        self.module = module
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.average_buffers = average_buffers
        self.overlap = bool(overlap)
        self.buffer_sync_interval = int(buffer_sync_interval)
        self.world_size = dist.get_world_size()
        self._ignore = set(getattr(module, '_ddp_params_and_buffers_to_ignore', ()))
        self._phases: dict[int, _PhaseBuckets] = {}
        self._armed: Optional[_PhaseBuckets] = None
        self._steps = 0
        self.buffers_stale = False
        self.grad_sync = GradientSync(self)
        with torch.no_grad():
            self._broadcast(
                [p.data for n, p in module.named_parameters() if n not in self._ignore]
                + self._synced_buffers()
            )
        if self.overlap:
            for n, p in module.named_parameters():
                if p.requires_grad and n not in self._ignore:
                    p.register_post_accumulate_grad_hook(self._grad_ready)

    def _grad_ready(self, p: Tensor) -> None:
        if self._armed is not None:
            self._armed.ready(p, dist.all_reduce, 1.0 / self.world_size)

    def _phase(self, optim_wrapper: OptimWrapper) -> _PhaseBuckets:
        """The buckets of ``optim_wrapper``'s trainable parameters (rebuilt when the set of
        trainable parameters changes, e.g. a stage unfrozen)."""
        seen: set[int] = set()
        params = []
        for group in optim_wrapper.optimizer.param_groups:
            for p in group['params']:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        phase = self._phases.get(id(optim_wrapper))
        if phase is None or phase.key != tuple(id(p) for p in params):
            phase = self._phases[id(optim_wrapper)] = _PhaseBuckets(params, self.bucket_cap_mb)
        return phase

    def _synced_buffers(self, teacher: bool = False) -> list[Tensor]:
        # Looked up every time: adaptive BN swaps in new buffer tensors.
        return [
            b
            for n, b in self.module.named_buffers()
            if n not in self._ignore or (teacher and b.dtype.is_floating_point)
        ]

    def _broadcast(self, tensors: list[Tensor]) -> None:
        _coalesced(tensors, lambda t: dist.broadcast(t, src=0), self.bucket_cap_mb)

    def sync_gradients(self, optim_wrapper: OptimWrapper) -> None:
        """Average the gradients of every parameter ``optim_wrapper`` steps over the ranks."""
        if not self.overlap:
            params = [p for group in optim_wrapper.optimizer.param_groups for p in group['params']]
            average_gradients(params, self.world_size, bucket_cap_mb=self.bucket_cap_mb)
            return
        phase = self._phase(optim_wrapper)
        if not phase.buckets:
            return
        scale = 1.0 / self.world_size
        for b in phase.buckets[phase.launched :]:
            b.launch(dist.all_reduce, scale)
        # One small collective: which parameters have a gradient on any rank, and which
        # buckets changed after their launch on any rank (those are reduced again).
        flags = torch.tensor(
            [float(p.grad is not None) for p in phase.params]
            + [float(b.late) for b in phase.buckets],
            device=phase.params[0].device,
        )
        dist.all_reduce(flags)
        has_grad = dict(zip((id(p) for p in phase.params), flags.tolist()))
        late = flags[len(phase.params) :].tolist()
        for b, again in zip(phase.buckets, late):
            b.work.wait()
            if again:
                b.launch(dist.all_reduce, scale)
                b.work.wait()
            for p, synced in zip(b.params, b.views):
                if has_grad[id(p)] == 0:
                    continue  # no gradient anywhere: the optimiser skips it
                if p.grad is None:
                    p.grad = synced.clone()
                else:
                    p.grad.copy_(synced)
        phase.reset()

    @torch.no_grad()
    def sync_buffers(self, floats_only: bool = False) -> None:
        """Average float buffers over the ranks; copy the others from rank 0.

        ``floats_only`` (the per-step sync): the integer buffers (BatchNorm's
        ``num_batches_tracked``, counters), which every rank advances alike, wait for the full
        sync before validation and checkpoints; one collective per step instead of two.
        """
        buffers = self._synced_buffers(teacher=self.buffer_sync_interval > 1)
        floats = [b for b in buffers if b.dtype.is_floating_point]
        _coalesced(floats, dist.all_reduce, self.bucket_cap_mb, scale=1.0 / self.world_size)
        if floats_only:
            return
        self._broadcast([b for b in buffers if not b.dtype.is_floating_point])
        self.buffers_stale = False

    def sync_buffers_if_stale(self) -> bool:
        """Sync the buffers when a training step changed them since the last sync (before
        validation and checkpoints); returns whether it did."""
        if not (self.average_buffers and self.buffers_stale):
            return False
        self.sync_buffers()
        return True

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, Tensor]:
        log_vars = self.module.train_step(data, optim_wrapper, grad_sync=self.grad_sync)
        self._steps += 1
        self.buffers_stale = True
        if self.average_buffers and self._steps % self.buffer_sync_interval == 0:
            self.sync_buffers(floats_only=True)
        return log_vars

    def val_step(self, data: Any) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        return self.module.test_step(data)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


# The environment variable holding the number of processes under each mmengine launcher.
WORLD_SIZE_ENV = dict(pytorch='WORLD_SIZE', slurm='SLURM_NTASKS', mpi='OMPI_COMM_WORLD_SIZE')


def launcher_world_size(launcher: str) -> int:
    """The number of training processes the launcher starts (1 without a launcher)."""
    if launcher == 'none':
        return 1
    var = WORLD_SIZE_ENV.get(launcher)
    if var is None or var not in os.environ:
        raise RuntimeError(
            f'launcher={launcher!r}: cannot read the number of processes '
            f'({var or "unknown launcher"} is not set); start the run with torchrun, srun or '
            'mpirun, or use --launcher none.'
        )
    return int(os.environ[var])


def apply_total_batch(cfg: Config, world_size: int) -> Optional[dict]:
    """Derive the per-process batch and the learning rate from ``total_batch_size``.

    A config that sets ``total_batch_size = N`` states the batch *per branch over all
    processes* for which its optimisers' learning rates are the reference. Each of ``W``
    processes then loads ``ceil(N / W)`` images per branch, and the learning rate follows the
    linear scaling rule (Goyal et al., arXiv:1706.02677) from the effective batch
    ``W * ceil(N / W)``: ``lr = lr_ref * W * ceil(N / W) / N``, through mmengine's
    ``auto_scale_lr`` with ``base_batch_size = N`` (``Runner.scale_lr``, which scales every
    optimiser wrapper). When ``W`` divides ``N`` the effective batch is ``N`` and the learning
    rate the reference one, so 1, 2 or 8 GPUs train the same recipe; otherwise the batch is
    rounded up and the learning rate scaled with it (logged). The schedule's iterations are
    unchanged. Returns what was applied, or None without ``total_batch_size``.
    """
    total = cfg.get('total_batch_size')
    if total is None:
        return None
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(
            f'total_batch_size={total!r}: give the images per branch over all processes, an '
            'integer >= 1 (e.g. total_batch_size=8).'
        )
    scale = cfg.get('auto_scale_lr') or {}
    if scale.get('enable') and scale.get('base_batch_size') != total:
        raise ValueError(
            f'total_batch_size={total} and auto_scale_lr={dict(scale)} disagree: '
            'total_batch_size sets auto_scale_lr itself; drop auto_scale_lr.'
        )
    per_process = -(-total // int(world_size))
    effective = per_process * int(world_size)
    cfg.train_dataloader.batch_size = per_process
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=total)
    applied = dict(
        total_batch_size=total,
        world_size=int(world_size),
        batch_per_process=per_process,
        effective_batch=effective,
        lr_factor=effective / total,
    )
    if effective != total:
        from mmengine.logging import print_log

        print_log(
            f'total_batch_size={total} is not a multiple of the {world_size} processes: '
            f'{per_process} images per branch and process, effective batch {effective}, '
            f'learning rates x {effective / total:g} (linear rule).',
            logger='current',
            level=30,
        )
    return applied


def prepare_distributed(cfg: Config) -> None:
    """Choose the model wrapper of a distributed run and initialise gloo without CUDA.

    Under any launcher an ``Adapter`` is wrapped in :class:`AdapterDataParallel` unless
    ``model_wrapper_cfg`` names another wrapper. mmengine's ``pytorch`` launcher calls
    ``torch.cuda.set_device``, which fails on a machine without a GPU; the Runner skips its
    own initialisation when a process group exists, so initialising gloo first is enough (a
    torch DDP wrapper then needs ``device_ids=None``, a CPU module).

    A config's ``total_batch_size`` sets the per-process batch and the learning-rate scaling
    for the launcher's number of processes (:func:`apply_total_batch`).

    ``sync_bn='torch'`` (read by the Runner, which converts the model's BatchNorm layers to
    ``torch.nn.SyncBatchNorm`` before wrapping it in a distributed run) is checked here: it
    needs CUDA.
    """
    launcher = cfg.get('launcher', 'none')
    if cfg.get('total_batch_size') is not None and 'train_dataloader' in cfg:
        apply_total_batch(cfg, launcher_world_size(launcher))
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
    if str(wrapper.get('type', '')).endswith('AdapterDataParallel'):
        hooks = list(cfg.get('custom_hooks') or [])
        if not any(str(h.get('type', '')).endswith('SyncBuffersHook') for h in hooks):
            # Buffers synced every buffer_sync_interval steps are synced again before
            # validation and checkpoints (uda.engine.hooks.SyncBuffersHook).
            cfg.custom_hooks = hooks + [dict(type='SyncBuffersHook')]
