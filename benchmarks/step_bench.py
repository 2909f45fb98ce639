"""Time (and measure the peak memory of) one training step of any config, with the speed switches.

The model and optimiser wrappers are built from the config (``cfg.model``, ``cfg.optim_wrapper``;
``--amp`` through :func:`uda.engine.amp.apply_amp`, ``--channels-last`` / ``--compile`` through
the adapter's ``channels_last`` / ``torch_compile``), the teacher is initialised and the step is
taken at the iteration where every term is active. Batches are random uint8 images (and labels
on every branch) of ``--size``, ``--batch`` images per branch, so only compute is timed (the
data pipeline is benchmarks/data_wait.py's). Used by benchmarks/step_memory.py and
benchmarks/reference_step.py.

    python benchmarks/step_bench.py configs/demo/sac_unet-resnet18_400_synthetic-96x192.py \
        --steps 5 [--amp bf16] [--channels-last] [--compile] [--memory]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from typing import Any, Callable, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import uda.engine  # noqa: E402,F401  (registers the optimiser wrappers)
from uda.engine.amp import apply_amp  # noqa: E402
from uda.engine.config import add_device_argument  # noqa: E402
from uda.models.segmentor import architecture_only  # noqa: E402
from uda.registry import MODELS  # noqa: E402


def load(
    config: str,
    options: Optional[dict] = None,
    amp: Optional[str] = None,
    channels_last: bool = False,
    compile_: bool = False,
    backward_groups: Optional[str] = None,
    device: str = 'cpu',
    segmentor: Optional[str] = None,
) -> Config:
    """The config with the switches applied (``backward_groups='per-term'``: one group per term;
    ``segmentor``: a model base config, e.g. ``configs/_base_/models/deeplabv2_resnet101.py``,
    whose ``segmentor`` replaces the config's, with the config's class count)."""
    cfg = Config.fromfile(config)
    if segmentor:
        base = Config.fromfile(segmentor)
        net = dict(base.segmentor, num_classes=cfg.model.segmentor.get('num_classes', 19))
        cfg.model.segmentor = ConfigDict(net)  # replaced, not merged
        cfg.model.data_preprocessor.size_divisor = base.data_preprocessor.size_divisor
    if options:
        cfg.merge_from_dict(options)
    # Speed and memory do not depend on the initial weights: never read or download a paper
    # config's init file (docs/weights.md), so the benchmarks run offline.
    cfg.model.segmentor = ConfigDict(architecture_only(cfg.model.segmentor))
    if channels_last:
        cfg.model.channels_last = True
    if compile_:
        cfg.model.torch_compile = True
    if backward_groups == 'per-term':
        cfg.model.backward_groups = [[name] for name in cfg.model.terms]
    apply_amp(cfg, amp, cuda=device.startswith('cuda'))
    return cfg


def build(cfg: Config, device: str = 'cpu') -> tuple[Any, Any, int]:
    """Adapter, optimiser wrapper(s), and the first iteration at which every term runs."""
    init_default_scope('uda')
    model = MODELS.build(cfg.model).to(device).train()
    if model.teacher is not None:
        model.teacher.init_from(model.student)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    iteration = max([start for start, _ in model.phases.values()] + [0])
    MessageHub.get_current_instance().update_info('iter', iteration)
    return model, wrapper, iteration


def branches_of(cfg: Config) -> list[str]:
    dataset = cfg.train_dataloader.dataset
    if 'branches' not in dataset:
        raise KeyError(f'{cfg.filename}: train_dataloader.dataset has no branches.')
    return list(dataset.branches)


def random_batch(
    branches: list[str], batch: int, size: tuple[int, int], seed: int, classes: int = 19
) -> dict:
    """A collated multi-branch batch of random images, with labels on every branch."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = {}
    for name in branches:
        imgs = [
            torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(batch)
        ]
        samples = [
            dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                gt_sem_seg=torch.randint(0, classes, (h, w), generator=g),
            )
            for _ in range(batch)
        ]
        out[name] = dict(inputs=imgs, data_samples=samples)
    return out


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_steps(
    step: Callable[[int], Any], steps: int, warmup: int, device: str, clock: str = 'wall'
) -> list[float]:
    """Seconds per call of ``step(i)`` after ``warmup`` untimed calls.

    ``clock='cpu'``: the process's CPU time instead of wall time. At one thread on a shared
    CPU (other processes competing for the cores) it is the step's compute time, which wall
    time overstates by the waits for a core.
    """
    now = time.process_time if clock == 'cpu' else time.perf_counter
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = now()
        step(i)
        sync(device)
        if i >= warmup:
            times.append(now() - t0)
    return times


def rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_during(fn: Callable[[], Any], device: str) -> float:
    """Peak memory (MiB) while ``fn`` runs above the memory held before it (CUDA: max
    allocated; CPU: resident set size sampled every 2 ms; run with MALLOC_MMAP_THRESHOLD_ /
    MALLOC_TRIM_THRESHOLD_ set, as benchmarks/step_memory.py does, so RSS follows the live
    tensors)."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base = rss_mib()
    peak = [base]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.002)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    return peak[0] - base


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    cfg = load(
        args.config,
        args.cfg_options,
        args.amp,
        args.channels_last,
        args.compile,
        args.backward_groups,
        args.device,
        args.segmentor,
    )
    model, wrapper, _ = build(cfg, args.device)
    branches = branches_of(cfg)
    batch = args.batch or cfg.train_dataloader.batch_size
    size = tuple(args.size)
    classes = model.num_classes

    def step(i: int, at: tuple = size) -> None:
        model.train_step(random_batch(branches, batch, at, i, classes), wrapper)

    out: dict[str, Any] = dict(
        config=args.config,
        amp=args.amp or 'fp32',
        channels_last=args.channels_last,
        compile=args.compile,
        backward_groups=args.backward_groups or 'one',
        threads=torch.get_num_threads(),
        batch=batch,
        size=list(size),
    )
    if args.memory:
        if args.memory_steps > 0:
            # Optimiser state and gradients exist from here on; --warmup-size makes this
            # untimed, unmeasured step cheap (its activations are freed before the next).
            step(0, tuple(args.warmup_size or size))
        # --memory-steps 0: the first step itself (its peak includes creating the optimiser
        # state), so held + peak is the process's peak RSS at the cost of one step.
        steps = range(int(args.memory_steps > 0), 1 + args.memory_steps)
        # Held between steps (weights, teacher, optimiser state, allocator); CPU only.
        out['held_mib'] = None if args.device.startswith('cuda') else rss_mib()
        out['peak_mib'] = peak_during(lambda: [step(i) for i in steps], args.device)
        out['params_mib'] = (
            sum(
                t.numel() * t.element_size()
                for t in {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
            )
            / 2**20
        )
        return out
    t0 = time.perf_counter()
    step(0)  # the first step: compilation, allocator warm-up
    out['first_step_s'] = time.perf_counter() - t0
    times = time_steps(lambda i: step(i + 1), args.steps, args.warmup, args.device, args.clock)
    out['step_s'] = statistics.median(times)
    out['clock'] = args.clock
    out['steps'] = len(times)
    return out


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='training config')
    parser.add_argument('--steps', type=int, default=5, help='timed steps')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps after the first')
    parser.add_argument('--batch', type=int, default=None, help='images per branch')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(96, 192), metavar=('H', 'W'), help='crop size'
    )
    add_device_argument(parser, default='cpu')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], default=None, help='mixed precision')
    parser.add_argument('--channels-last', action='store_true', help='channels_last memory format')
    parser.add_argument('--compile', action='store_true', help='torch.compile the networks')
    parser.add_argument(
        '--backward-groups',
        choices=['per-term'],
        default=None,
        help='one backward pass per term (model.backward_groups)',
    )
    parser.add_argument('--memory', action='store_true', help='peak memory instead of time')
    parser.add_argument(
        '--memory-steps',
        type=int,
        default=2,
        help='steps measured by --memory after an unmeasured one (0: the first step alone)',
    )
    parser.add_argument(
        '--warmup-size',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='input size of the unmeasured first step of --memory (default --size)',
    )
    parser.add_argument(
        '--segmentor',
        default=None,
        help="a model base config whose segmentor replaces the config's",
    )
    parser.add_argument(
        '--clock',
        choices=['wall', 'cpu'],
        default='wall',
        help='cpu: process CPU time (the compute time at 1 thread on a shared CPU)',
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={}, help='override config keys'
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.device == 'cpu' and 'OMP_NUM_THREADS' not in os.environ:
        torch.set_num_threads(1)
    print(json.dumps(run(args)))


if __name__ == '__main__':
    main()
