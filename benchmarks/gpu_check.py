"""The GPU check of issue 26: step time and peak memory of every method at the 512x512
GTA5 -> Cityscapes settings, the reference SAC step, and the data pipeline's rate.

Prints, under the device name and the date (UTC):

1. one training step of ABN / SAC / DACS / MIC / UniMatch with DeepLab-v2 ResNet-101 and with
   SegFormer MiT-B5, each in fp32, bf16 and fp16 (the configs' optimiser wrappers through
   :func:`uda.engine.amp.apply_amp`), on random 512x512 images with the GTA settings' batch
   (2 per branch): median seconds of ``--steps`` steps after ``--warmup``, and peak memory
   (CUDA: max allocated above the memory held before the steps; CPU: not measured);
2. the reference SAC step (visinf/da-sac, ``benchmarks/reference_step.py --device``) when
   ``--reference`` (or ``DA_SAC``) names a checkout;
3. the GTA5 -> Cityscapes train pipeline's images per second with one loader worker (full-size
   PNGs decoded, resized and cropped; random images in the official layouts when
   ``--data-root`` is not given), and for each step the workers that keep up with it.

``benchmarks/gpu_check.sh`` runs it with the defaults (under 8 minutes on one H100-class GPU;
cells beyond ``--budget-s`` are reported as skipped). ``--reduced`` (tested on the CPU by
tests/benchmarks/test_gpu_check.py) runs the same code on ResNet-18 / MiT-B0, 64x64, one step.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from step_bench import branches_of, build, load, random_batch, time_steps  # noqa: E402

from uda.engine.config import add_device_argument  # noqa: E402

MODELS_DIR = os.path.join(ROOT, 'configs', '_base_', 'models')
ARCHS = {
    'DeepLab-v2 R101': (os.path.join(MODELS_DIR, 'deeplabv2_resnet101.py'), 'resnet18'),
    'SegFormer MiT-B5': (os.path.join(MODELS_DIR, 'segformer_mit-b5.py'), 'mit_b0'),
}
# Method -> its GTA5 -> Cityscapes config (UniMatch: its Cityscapes config; the segmentor is
# replaced by the architecture's in every case).
METHODS = {
    'ABN': 'configs/abn/abn_unet-resnet18_1k_gta2cityscapes-512x512.py',
    'SAC': 'configs/sac/sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py',
    'DACS': 'configs/dacs/dacs_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py',
    'MIC': 'configs/mic/mic_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py',
    'UniMatch': 'configs/semi/unimatch_deeplabv3plus-resnet101_84k_cityscapes-1of16-801x801.py',
}
PRECISIONS = ('fp32', 'bf16', 'fp16')


def device_name(device: str) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        model = platform.processor() or 'unknown CPU'
    return f'{model} (CPU, {torch.get_num_threads()} thread(s))'


def step_cell(method: str, arch: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per step and peak memory of one method x architecture x precision."""
    base, small = ARCHS[arch]
    options: dict[str, Any] = {}
    if args.reduced:
        options['model.segmentor.encoder_name'] = small
    cfg = load(
        os.path.join(ROOT, METHODS[method]),
        options,
        amp=None if precision == 'fp32' else precision,
        device=args.device,
        segmentor=base,
    )
    torch.manual_seed(0)
    model, wrapper, _ = build(cfg, args.device)
    branches = branches_of(cfg)
    batch = args.batch or cfg.train_dataloader.batch_size
    size = tuple(args.size)
    classes = model.num_classes

    def step(i: int) -> None:
        out = model.train_step(random_batch(branches, batch, size, i, classes), wrapper)
        for v in out.values():
            if not torch.isfinite(v).all():
                raise FloatingPointError(f'{method} {arch} {precision}: non-finite {out}')

    cuda = args.device.startswith('cuda')
    for i in range(args.warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
    times = time_steps(lambda i: step(i + args.warmup), args.steps, 0, args.device, 'wall')
    peak = (torch.cuda.max_memory_allocated() - held) / 2**20 if cuda else None
    images = batch * len(branches)
    return dict(
        method=method,
        arch=arch,
        precision=precision,
        step_s=statistics.median(times),
        peak_mib=peak,
        images_per_step=images,
        batch=batch,
    )


def pipeline_rate(args: argparse.Namespace) -> dict[str, Any]:
    """Images per second of the GTA5 -> Cityscapes train pipeline with one loader worker."""
    from data_wait import write_fake_cityscapes_gta
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    cfg = load(os.path.join(ROOT, METHODS['ABN']))
    root = args.data_root
    if root is None:
        root = os.path.join(tempfile.gettempdir(), 'uda_gpu_check_data')
        frames = 2 if args.reduced else 8
        gta, city = write_fake_cityscapes_gta(root, frames)
    else:
        gta, city = os.path.join(root, 'gta5'), os.path.join(root, 'cityscapes')
    branches = cfg.train_dataloader.dataset.branches
    branches.source.data_root, branches.target.data_root = gta, city
    loader_cfg = dict(cfg.train_dataloader)
    loader_cfg.update(num_workers=1, persistent_workers=False, pin_memory=False)
    init_default_scope('uda')
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    it = iter(loader)
    next(it)  # worker start-up
    batches = 2 if args.reduced else args.pipeline_batches
    t0 = time.perf_counter()
    images = 0
    for _ in range(batches):
        data = next(it)
        images += sum(len(b['inputs']) for b in data.values())
    seconds = time.perf_counter() - t0
    return dict(
        images_per_s=images / seconds, batches=batches, images=images, real=bool(args.data_root)
    )


def reference_sac(args: argparse.Namespace) -> Optional[str]:
    path = args.reference or os.environ.get('DA_SAC')
    if not path:
        return None
    cmd = [
        sys.executable,
        os.path.join(ROOT, 'benchmarks', 'reference_step.py'),
        '--reference',
        path,
        '--device',
        args.device,
        '--clock',
        'wall',
        '--size',
        *map(str, args.size),
        '--steps',
        str(args.steps),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return f'reference_step.py failed: {out.stderr.strip().splitlines()[-1:]}'
    return out.stdout.strip()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument(
        '--size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'), help='crop size'
    )
    parser.add_argument('--batch', type=int, default=None, help="default: the config's")
    parser.add_argument('--steps', type=int, default=3, help='timed steps per cell')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=list(METHODS),
        choices=list(METHODS),
        help='methods measured',
    )
    parser.add_argument(
        '--archs', nargs='+', default=list(ARCHS), choices=list(ARCHS), help='networks measured'
    )
    parser.add_argument(
        '--precisions',
        nargs='+',
        default=list(PRECISIONS),
        choices=PRECISIONS,
        help='precisions measured',
    )
    parser.add_argument('--reference', default=None, help='checkout of visinf/da-sac')
    parser.add_argument('--data-root', default=None, help='folder with gta5/ and cityscapes/')
    parser.add_argument(
        '--pipeline-batches', type=int, default=16, help='batches timed through the data pipeline'
    )
    parser.add_argument('--budget-s', type=float, default=420.0, help='skip cells after this')
    parser.add_argument(
        '--reduced',
        action='store_true',
        help='CPU test mode: ResNet-18 / MiT-B0, 64x64, batch 1, one step, no warm-up',
    )
    args = parser.parse_args(argv)
    from mmengine.logging import MMLogger

    # The current logger: mmengine's optimiser constructors log every parameter group.
    MMLogger.get_instance('uda_gpu_check', log_level='ERROR')
    if args.reduced:
        args.size, args.batch, args.steps, args.warmup = (64, 64), 1, 1, 0
    start = time.perf_counter()
    print(f'uda GPU check: {device_name(args.device)}')
    print(f'date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}')
    print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {" ".join(sys.argv[1:])}')
    rows = []
    for arch in args.archs:
        for method in args.methods:
            for precision in args.precisions:
                if time.perf_counter() - start > args.budget_s:
                    rows.append(dict(method=method, arch=arch, precision=precision, skipped=True))
                    continue
                try:
                    rows.append(step_cell(method, arch, precision, args))
                except (RuntimeError, FloatingPointError) as err:  # e.g. out of memory
                    rows.append(
                        dict(method=method, arch=arch, precision=precision, error=str(err)[:200])
                    )
                if args.device.startswith('cuda'):
                    torch.cuda.empty_cache()
    h, w = args.size
    print(f'\n1. one training step, {h}x{w}, median of {args.steps} after {args.warmup} warm-up')
    print('| arch | method | precision | s/step | images/s | peak MiB |')
    print('|---|---|---|---:|---:|---:|')
    for r in rows:
        if 'step_s' not in r:
            why = 'skipped (budget)' if r.get('skipped') else f'error: {r["error"]}'
            print(f'| {r["arch"]} | {r["method"]} | {r["precision"]} | {why} | | |')
            continue
        peak = '' if r['peak_mib'] is None else f'{r["peak_mib"]:.0f}'
        rate = r['images_per_step'] / r['step_s']
        print(
            f'| {r["arch"]} | {r["method"]} | {r["precision"]} | {r["step_s"]:.3f} | '
            f'{rate:.1f} | {peak} |'
        )
    print('\n2. reference SAC step (visinf/da-sac, DeepLab-v2 ResNet-101):')
    ref = reference_sac(args)
    print(ref if ref else 'not run: give --reference /path/to/da-sac (or DA_SAC=...)')
    pipe = pipeline_rate(args)
    kind = 'real' if pipe['real'] else 'random full-size PNGs in the official layouts'
    print(
        f'\n3. data pipeline (GTA5 -> Cityscapes 512x512 crops, {kind}): '
        f'{pipe["images_per_s"]:.1f} images/s per loader worker ({pipe["images"]} images)'
    )
    print('| arch | method | precision | step consumes images/s | workers needed |')
    print('|---|---|---|---:|---:|')
    for r in rows:
        if 'step_s' in r:
            need = r['images_per_step'] / r['step_s']
            workers = need / pipe['images_per_s']
            print(
                f'| {r["arch"]} | {r["method"]} | {r["precision"]} | {need:.1f} | {workers:.2f} |'
            )
    print(f'\ntotal {time.perf_counter() - start:.0f} s')
    print(json.dumps(dict(steps=rows, pipeline=pipe)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
