"""Peak memory (and with ``--time`` the step time) of every method's step, against ABN and SAC.

Each figure is the median over ``--repeat`` fresh processes of ``benchmarks/step_bench.py
CONFIG --memory``: the peak above the memory held between steps (model, optimiser state) over
two steps (CUDA: max allocated; CPU: resident set size sampled every 2 ms, with glibc told to
return large blocks at once so RSS follows the live tensors). ``per-term`` sets
``model.backward_groups`` to one group per term: each term's graph is freed before the next
term runs (terms then recompute shared student forwards). The goal of issue 16: SAC <= 1.6 x ABN.
``--time`` adds the median process CPU time of a step (``step_bench.py --clock cpu``: the
compute time at one thread, insensitive to other jobs sharing the CPU) and every figure's ratio
to SAC's (issue 13: the cost of each consistency term against SAC).

    OMP_NUM_THREADS=1 python benchmarks/step_memory.py [--methods ABN SAC] [--repeat 3] [--time]

``--matrix`` (issue 26) measures ABN / SAC / DACS / UniMatch steps with the networks of the
literature instead of the demo's UNet-ResNet18: DeepLab-v2 ResNet-101, SegFormer MiT-B5 and
DPT on ViT-S/B/L of DINOv2's sizes (patch 16), each plain, with activation checkpointing
(``segmentor.activation_checkpointing``) and with a frozen encoder that the teacher shares
(``segmentor.freeze=dict(encoder=True)``); one process per cell, results appended to
``--jsonl`` as they come (a rerun skips the cells already there), the table printed at the end:

    OMP_NUM_THREADS=1 python benchmarks/step_memory.py --matrix --size 512 512 --batch 1 \
        --jsonl /tmp/matrix.jsonl [--encoders ResNet-101 MiT-B5] [--variants plain checkpointing]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYN = '_unet-resnet18_400_synthetic-96x192.py'
SEMI = '_unet-resnet18_400_synthetic-1of16-96x96.py'
# Every method on the built-in synthetic shift (UNet-ResNet18, 4 images per branch, random
# images of --size): name -> (config, cfg-options).
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    'ABN': ('configs/demo/abn' + SYN, {}),
    'SAC': ('configs/demo/sac' + SYN, {}),
    # SAC's 8 target views through the student 4 / 2 at a time, earlier chunks back-propagated
    # at once (SACSelfTraining.views_per_pass).
    'SAC, 4 views/pass': ('configs/demo/sac' + SYN, {'model.terms.sac.views_per_pass': 4}),
    'SAC, 2 views/pass': ('configs/demo/sac' + SYN, {'model.terms.sac.views_per_pass': 2}),
    'DACS': ('configs/dacs/dacs' + SYN, {}),
    'MIC': ('configs/mic/mic' + SYN, {}),
    'weak/strong': ('configs/weak_strong/weak-strong' + SYN, {}),
    'VAT': ('configs/vat/vat' + SYN, {}),
    'AdvEnt': ('configs/advent/advent' + SYN, {}),
    'AdvEnt+MinEnt': ('configs/advent/advent-minent' + SYN, {}),
    'MinEnt': ('configs/advent/minent' + SYN, {}),
    'AdaptSegNet': ('configs/adaptsegnet/adaptsegnet' + SYN, {}),
    'FeatureGRL': ('configs/feature_adversarial/feature-adversarial' + SYN, {}),
    'FeatureAdv+SAC': ('configs/sac/feature-adversarial-sac' + SYN, {}),
    'full_pipeline': ('configs/full_pipeline/full-pipeline' + SYN, {}),
    # Semi-supervised (labelled + unlabelled branches) and image-label methods.
    'supervised (semi)': ('configs/semi/supervised' + SEMI, {}),
    'mean teacher': ('configs/semi/mean-teacher' + SEMI, {}),
    'FixMatch': ('configs/semi/fixmatch' + SEMI, {}),
    'UniMatch': ('configs/semi/unimatch' + SEMI, {}),
    'CAM (image labels)': ('configs/cam/cam' + SYN, {}),
    'SAC + target CAM': ('configs/sac/sac-cam' + SYN, {}),
}


MODELS_DIR = 'configs/_base_/models/'
# Encoder -> (model base config, cfg-options). DINOv2 sizes: ViT-S/B/L = 384/768/1024 wide,
# 12/12/24 blocks (timm ``vit_*_patch14_dinov2``), at patch 16 (smp's DPT needs a power of
# two; a DINOv2 checkpoint loads through timm's patch-embedding resampling).
ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    'ResNet-101': (MODELS_DIR + 'deeplabv2_resnet101.py', {}),
    'MiT-B5': (MODELS_DIR + 'segformer_mit-b5.py', {}),
    **{
        f'ViT-{size[0].upper()}': (
            MODELS_DIR + 'dpt_vit-small-p16.py',
            {
                'model.segmentor.encoder_name': f'tu-vit_{size}_patch14_dinov2',
                'model.segmentor.encoder_kwargs.patch_size': 16,
                'model.segmentor.encoder_kwargs.img_size': 512,
                'model.segmentor.decoder_intermediate_channels': channels,
                'model.segmentor.decoder_fusion_channels': 256 if size != 'small' else 128,
            },
        )
        for size, channels in (
            ('small', (96, 192, 384, 384)),
            ('base', (96, 192, 384, 768)),
            ('large', (256, 512, 1024, 1024)),
        )
    },
}
VARIANTS: dict[str, dict[str, Any]] = {
    'plain': {},
    'checkpointing': {'model.segmentor.activation_checkpointing': True},
    'frozen encoder': {'model.segmentor.freeze.encoder': True},
}
MATRIX_METHODS = ('ABN', 'DACS', 'UniMatch', 'SAC')


def matrix_cell(method: str, encoder: str, variant: str, args: argparse.Namespace) -> dict:
    """One step_bench.py --memory process: held and peak RSS (MiB) of one cell."""
    config, options = METHODS[method]
    base, enc_options = ENCODERS[encoder]
    options = {**options, **enc_options, **VARIANTS[variant]}
    cmd = [
        sys.executable,
        os.path.join(ROOT, 'benchmarks', 'step_bench.py'),
        os.path.join(ROOT, config),
        '--memory',
        '--memory-steps',
        str(args.memory_steps),
        '--warmup-size',
        *map(str, args.warmup_size or args.size),
        '--device',
        args.device,
        '--size',
        *map(str, args.size),
        '--segmentor',
        os.path.join(ROOT, base),
    ]
    if options:
        cmd += ['--cfg-options', *(f'{k}={_option(v)}' for k, v in options.items())]
    cmd += ['--batch', str(args.batch)] if args.batch else []
    cmd += ['--amp', args.amp] if args.amp else []
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_='65536',
        MALLOC_TRIM_THRESHOLD_='0',
        OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'),
    )
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    cell = dict(method=method, encoder=encoder, variant=variant)
    if out.returncode != 0:
        return dict(cell, error=out.stderr.strip().splitlines()[-1][-300:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(cell, **{k: res[k] for k in ('held_mib', 'peak_mib', 'params_mib', 'batch')})


def _option(v: Any) -> str:
    return str(v).replace(' ', '') if isinstance(v, tuple) else str(v)


def run_matrix(args: argparse.Namespace) -> None:
    done: dict[tuple[str, str, str], dict] = {}
    if args.jsonl and os.path.isfile(args.jsonl):
        with open(args.jsonl) as f:
            for line in f:
                r = json.loads(line)
                done[(r['method'], r['encoder'], r['variant'])] = r
    skip = {tuple(s.split(':')) for s in args.skip}
    for encoder in args.encoders:
        for method in args.methods:
            for variant in args.variants:
                key = (method, encoder, variant)
                if key in done or (encoder, method) in skip:
                    continue
                r = done[key] = matrix_cell(method, encoder, variant, args)
                print(json.dumps(r), flush=True)
                if args.jsonl:
                    with open(args.jsonl, 'a') as f:
                        f.write(json.dumps(r) + '\n')
    print(
        f'\nRSS of a step, MiB (held between steps + peak growth during '
        f'{args.memory_steps} step(s) = total), {args.size[0]}x{args.size[1]}, batch '
        f'{args.batch} per branch, {args.amp or "fp32"}:'
    )
    print(
        '| method | encoder | '
        + ' | '.join(f'{v} total (held + step)' for v in args.variants)
        + ' |'
    )
    print('|---|---|' + '---:|' * len(args.variants))
    for method in args.methods:
        for encoder in args.encoders:
            cells = []
            for variant in args.variants:
                r = done.get((method, encoder, variant))
                if r is None:
                    cells.append('not run')
                elif 'error' in r:
                    cells.append('failed')
                else:
                    total = r['held_mib'] + r['peak_mib']
                    cells.append(f'{total:.0f} ({r["held_mib"]:.0f} + {r["peak_mib"]:.0f})')
            print(f'| {method} | {encoder} | ' + ' | '.join(cells) + ' |')


def bench(method: str, groups: Optional[str], args: argparse.Namespace, memory: bool) -> float:
    """Median over ``args.repeat`` fresh processes of step_bench's peak MiB or CPU seconds."""
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_='65536',
        MALLOC_TRIM_THRESHOLD_='0',
        OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'),
    )
    config, options = METHODS[method]
    cmd = [
        sys.executable,
        os.path.join(ROOT, 'benchmarks', 'step_bench.py'),
        os.path.join(ROOT, config),
        *(['--memory'] if memory else ['--clock', 'cpu', '--steps', str(args.steps)]),
        '--device',
        args.device,
        '--size',
        *map(str, args.size),
    ]
    cmd += ['--backward-groups', groups] if groups else []
    cmd += ['--amp', args.amp] if args.amp else []
    cmd += ['--cfg-options', *(f'{k}={v}' for k, v in options.items())] if options else []
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f'{" ".join(cmd)} failed:\n{out.stderr[-3000:]}')
        res = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(res['peak_mib'] if memory else res['step_s'])
    return statistics.median(runs)


def main() -> None:
    sys.path.insert(0, ROOT)
    from uda.engine.config import add_device_argument

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--methods',
        nargs='+',
        default=list(METHODS),
        choices=list(METHODS),
        help='methods measured',
    )
    parser.add_argument('--repeat', type=int, default=3, help='processes per figure')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(96, 192), metavar=('H', 'W'), help='crop size'
    )
    add_device_argument(parser, default='cpu')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], default=None, help='mixed precision')
    parser.add_argument('--time', action='store_true', help='also the CPU time of a step')
    parser.add_argument('--steps', type=int, default=3, help='timed steps per process')
    parser.add_argument('--matrix', action='store_true', help='methods x encoders x variants')
    parser.add_argument(
        '--encoders',
        nargs='+',
        default=list(ENCODERS),
        choices=list(ENCODERS),
        help='encoders (--matrix)',
    )
    parser.add_argument(
        '--variants',
        nargs='+',
        default=list(VARIANTS),
        choices=list(VARIANTS),
        help='memory options (--matrix)',
    )
    parser.add_argument('--batch', type=int, default=None, help='images per branch (--matrix)')
    parser.add_argument('--memory-steps', type=int, default=1, help='measured steps (--matrix)')
    parser.add_argument(
        '--warmup-size', type=int, nargs=2, default=None, help='size of the unmeasured step'
    )
    parser.add_argument('--jsonl', default=None, help='--matrix results, appended and reused')
    parser.add_argument(
        '--skip', nargs='*', default=[], help='ENCODER:METHOD cells to leave out (--matrix)'
    )
    args = parser.parse_args()
    if args.matrix:
        if args.methods == list(METHODS):
            args.methods = list(MATRIX_METHODS)
        run_matrix(args)
        return
    methods = [m for m in ('ABN', 'SAC') if m not in args.methods] + args.methods
    rows = {}
    for name in methods:
        rows[name] = {g or 'one': bench(name, g, args, True) for g in (None, 'per-term')}
        if args.time:
            rows[name]['step_s'] = bench(name, None, args, False)
        print(json.dumps({name: rows[name]}), flush=True)
    abn, sac = rows['ABN']['one'], rows['SAC']['one']
    kind = 'CUDA max allocated' if args.device.startswith('cuda') else 'peak RSS growth'
    print(
        f'\npeak memory of a step ({kind}, MiB, median of {args.repeat} processes, '
        f'{args.size[0]}x{args.size[1]}, {args.amp or "fp32"}):'
    )
    head = '| method | one backward | x ABN | x SAC | backward per term | x ABN |'
    print(head + (' step, CPU s | x SAC |' if args.time else ''))
    print('|---|' + '---:|' * (7 if args.time else 5))
    for name, r in rows.items():
        row = (
            f'| {name} | {r["one"]:.0f} | {r["one"] / abn:.2f} | {r["one"] / sac:.2f} | '
            f'{r["per-term"]:.0f} | {r["per-term"] / abn:.2f} |'
        )
        if args.time:
            row += f' {r["step_s"]:.3f} | {r["step_s"] / rows["SAC"]["step_s"]:.2f} |'
        print(row)


if __name__ == '__main__':
    main()
