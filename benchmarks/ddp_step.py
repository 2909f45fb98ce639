"""Step time of data-parallel training on 2 gloo processes: the old wrapper, the new one, torch DDP.

The same student step (source cross-entropy on ``--batch`` random images of ``--size`` per rank,
UNet-``--encoder``, SGD) is taken by three data-parallel implementations, from identical weights:

- ``AdapterDataParallel(overlap=False)``: every gradient averaged after the whole backward
  pass (the wrapper before issue 26);
- ``AdapterDataParallel(overlap=True)``: bucketed asynchronous all-reduces launched
  from the gradient hooks during the backward pass, awaited before the step;
- ``torch.nn.parallel.DistributedDataParallel`` around the student (its C++ reducer, 25 MiB
  buckets, ``broadcast_buffers=True``), the adapter's step otherwise unchanged.

Each process runs at ``OMP_NUM_THREADS`` (1 by default) threads; after one warm-up step each,
the variants take one step each in turn, ``--rounds`` x ``--steps`` times, so a change in the
load of a shared machine hits all three alike. Rank 0 prints the median wall time per step
(both ranks start each step together) and the ratios::

    OMP_NUM_THREADS=1 python benchmarks/ddp_step.py [--size 128 128] [--batch 2] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.optim import OptimWrapper  # noqa: E402

from benchmarks.step_bench import random_batch  # noqa: E402
from uda.engine import AdapterDataParallel  # noqa: E402
from uda.registry import MODELS  # noqa: E402

VARIANTS = ('old wrapper', 'new wrapper', 'torch DDP')


def _adapter(encoder: str) -> Any:
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='SMPSegmentor', arch='Unet', encoder_name=encoder, num_classes=19),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=32),
            terms=dict(src=dict(type='SourceCE')),
            bn_policy='train',
        )
    )


def _worker(rank: int, init_file: str, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        models = {v: _adapter(args.encoder).train() for v in VARIANTS}
        state = models['old wrapper'].state_dict()
        for m in models.values():
            m.load_state_dict(state)
        steps = {
            'old wrapper': AdapterDataParallel(models['old wrapper'], overlap=False).train_step,
            'new wrapper': AdapterDataParallel(models['new wrapper'], overlap=True).train_step,
        }
        torch_ddp = models['torch DDP']
        torch_ddp.student = DistributedDataParallel(torch_ddp.student, device_ids=None)
        steps['torch DDP'] = torch_ddp.train_step
        wrappers = {
            v: OptimWrapper(torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9))
            for v, m in models.items()
        }
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        size = tuple(args.size)
        for v in VARIANTS:  # warm-up
            steps[v](random_batch(['source'], args.batch, size, rank), wrappers[v])
        for r in range(args.rounds):
            for i in range(args.steps):
                batch = random_batch(['source'], args.batch, size, 1000 * r + 10 * i + rank)
                for v in VARIANTS:  # alternate step by step: load changes hit all alike
                    dist.barrier()
                    t0 = time.perf_counter()
                    steps[v](batch, wrappers[v])
                    times[v].append(time.perf_counter() - t0)
        if rank == 0:
            with open(out, 'w') as f:
                json.dump(times, f)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--encoder', default='resnet18', help='UNet encoder (smp name)')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'), help='crop size'
    )
    parser.add_argument('--batch', type=int, default=2, help='images per rank')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per round')
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds per variant')
    args = parser.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'times.json')
        mp.spawn(_worker, args=(os.path.join(tmp, 'store'), args, out), nprocs=2)
        with open(out) as f:
            times = json.load(f)
    med = {v: statistics.median(t) for v, t in times.items()}
    threads = os.environ['OMP_NUM_THREADS']
    print(
        f'2 gloo processes x {threads} thread(s), UNet-{args.encoder}, {args.batch} x '
        f'{args.size[0]}x{args.size[1]} per rank, median wall s/step of '
        f'{args.rounds} x {args.steps} steps:'
    )
    print('| wrapper | s/step | x torch DDP | x old wrapper |')
    print('|---|---:|---:|---:|')
    for v in VARIANTS:
        print(
            f'| {v} | {med[v]:.3f} | {med[v] / med["torch DDP"]:.3f} | '
            f'{med[v] / med["old wrapper"]:.3f} |'
        )
    print(json.dumps(dict(median_s=med, threads=int(threads), args=vars(args))))


if __name__ == '__main__':
    main()
