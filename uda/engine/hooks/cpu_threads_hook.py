"""A fixed intra-op thread count for CPU runs, so a seeded CPU run gives the same numbers on
every machine."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from uda.registry import HOOKS


@HOOKS.register_module()
class CPUThreadsHook(Hook):
    """Pin torch's intra-op thread count when the model trains on the CPU (1 by default).

    A seeded CPU run is bit-identical from run to run, but its numbers depend on the thread
    count: convolutions and reductions split their sums by thread, and float addition is not
    associative (one SAC-demo step: weights differ by 4e-3 after 4 steps with 1 vs 2 threads).
    torch uses one thread per physical core by default, so without a pin a 2-core laptop and an
    8-core desktop print different mIoUs for the same config and seed (issue 11: a 2-thread
    run of the SAC demo printed 27.17 -> 36.88 where the README says 29.08 -> 35.62). One
    thread is the count every machine has, and it is also the fast choice on a busy CPU: on
    the 2-core reference machine with one other process running, a SAC-demo step took
    0.5-0.6 s with 1 thread and 4.5-7.7 s with 2 (OpenMP threads waiting for a core). GPU runs
    are left alone (their kernels do not use the CPU thread count).

    An explicit ``OMP_NUM_THREADS`` in the environment that differs wins, with a warning that
    the run's numbers then belong to that thread count.

    Args:
        num_threads: Intra-op threads for CPU runs; ``None`` keeps torch's default.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_threads: Optional[int] = 1) -> None:
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(
                f'CPUThreadsHook: num_threads must be a positive int or None, got '
                f'{num_threads!r}; e.g. default_hooks.cpu_threads.num_threads=1.'
            )
        self.num_threads = num_threads

    def before_run(self, runner: Any) -> None:
        if self.num_threads is None or _on_gpu(runner.model):
            return
        env = os.environ.get('OMP_NUM_THREADS')
        if env is not None and env != str(self.num_threads):
            print_log(
                f'CPUThreadsHook: OMP_NUM_THREADS={env} overrides the configured '
                f"{self.num_threads} CPU threads; this run's numbers belong to {env} "
                'thread(s) (CPU results depend on the thread count).',
                logger='current',
                level=logging.WARNING,
            )
            return
        torch.set_num_threads(self.num_threads)
        print_log(
            f'CPUThreadsHook: {self.num_threads} intra-op CPU threads (results depend on the '
            'thread count; change with default_hooks.cpu_threads.num_threads=N).',
            logger='current',
        )


def _on_gpu(model: torch.nn.Module) -> bool:
    return any(p.device.type != 'cpu' for p in model.parameters())
