"""Distributed training without a GPU (gloo), for CPU clusters and the test suite."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def prepare_cpu_distributed(cfg: Config) -> None:
    """Initialise a gloo process group and a CPU DDP wrapper when CUDA is unavailable.

    mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps the model with
    ``device_ids=[local_rank]``; both fail on a machine without a GPU. The Runner skips its own
    initialisation when a process group exists, so initialising gloo first is enough; the
    DDP wrapper then needs ``device_ids=None`` (a CPU module).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
