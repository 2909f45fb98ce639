"""Cost of one SAC training step against its unavoidable network passes, in one process.

The unavoidable passes of a SAC step are: student forward + backward on the source batch and
on the noised target views, and the teacher's forward on the clean views. The benchmark times
(1) a full ``Adapter.train_step`` with SourceCE + SACSelfTraining (plus the teacher's EMA
update, amortised over ``--ema-interval`` steps as EMATeacherHook runs it), (2) those passes
alone on tensors of the same shapes, and the pieces in between (view sampling + noise, fusion
+ thresholds, the optimiser step). It
also reports the peak memory of a SAC step and of an ABN step above the memory held between
steps (CUDA: max allocated; CPU: peak resident set size sampled every 2 ms), each measured
in a fresh subprocess.

    python benchmarks/sac_step_cost.py --steps 10 [--device cuda]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from uda.augment.views import fuse_views  # noqa: E402
from uda.engine.config import add_device_argument  # noqa: E402
from uda.methods.sac import adaptive_thresholds, pseudo_labels  # noqa: E402
from uda.registry import MODELS  # noqa: E402

SEGMENTOR = dict(
    type='SMPSegmentor',
    arch='Unet',
    encoder_name='resnet18',
    encoder_weights=None,
    num_classes=19,
    decoder_channels=(128, 64, 32, 16, 16),
)


def build(method: str, args: argparse.Namespace):
    terms = dict(src=dict(type='SourceCE'))
    extra: dict = dict(bn_policy='target_only')  # ABN
    if method == 'sac':
        terms['sac'] = dict(type='SACSelfTraining', log_per_class=False)
        extra = dict(
            labellers=dict(
                sac=dict(type='SACLabeller', num_images=args.target_images, num_views=args.views)
            ),
            # the from-scratch configs keep target-only BN statistics during SAC
            bn_policy='target_only' if args.abn_during_sac else 'frozen_stats',
        )
        if args.backward_groups:
            extra['backward_groups'] = [['src'], ['sac']]
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=SEGMENTOR,
            terms=terms,
            data_preprocessor=dict(type='SegDataPreprocessor'),
            **extra,
        )
    )
    model.to(args.device).train()
    if method == 'sac':
        model.teacher.init_from(model.student)
    opt = torch.optim.AdamW(model.student.parameters(), lr=1e-4)
    from mmengine.optim import OptimWrapper

    return model, OptimWrapper(opt)


def batch(args: argparse.Namespace, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    h, w = args.size
    out = {}
    for name, n in (('source', args.batch), ('target', args.batch)):
        imgs = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(n)]
        samples = [dict(img_shape=(h, w), ori_shape=(h, w)) for _ in range(n)]
        if name == 'source':
            for s in samples:
                s['gt_sem_seg'] = torch.randint(0, 19, (h, w), generator=g)
        out[name] = dict(inputs=imgs, data_samples=samples)
    return out


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def step_cost(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model, wrapper = build('sac', args)
    term, labeller = model.terms['sac'], model.labellers['sac']
    k = args.target_images * args.views
    h, w = args.size
    res = {
        key: []
        for key in (
            'step_cpu',
            'step',
            'passes',
            'src_fb',
            'tgt_fb',
            'teacher_f',
            'abn_f',
            'views',
            'fuse_thr',
            'optim',
            'ema',
        )
    }
    for i in range(args.warmup + args.steps):
        data = batch(args, i)

        def full_step():
            model.train_step(data, wrapper)

        cpu0 = time.process_time()
        t_step = timed(full_step, args.device)
        t_step_cpu = time.process_time() - cpu0
        # The unavoidable passes, on tensors of the same shapes.
        pre = model.data_preprocessor(data, True)
        x_src = pre['inputs']['source']
        gt = torch.stack([s['gt_sem_seg'] for s in pre['data_samples']['source']])
        x_views = torch.randn(k, 3, h, w, device=args.device)
        labels = torch.randint(0, 19, (k, h, w), device=args.device)

        def src_fb():
            torch.nn.functional.cross_entropy(model.student(x_src), gt, ignore_index=255).backward()

        def tgt_fb():
            torch.nn.functional.cross_entropy(model.student(x_views), labels).backward()

        def teacher_f():
            with torch.no_grad():
                model.teacher(x_views)

        def abn_f():  # ABN's no-grad train-mode forward of the loaded target batch
            with torch.no_grad():
                model.student(pre['inputs']['target'])

        t_src, t_tgt, t_teacher = (
            timed(src_fb, args.device),
            timed(tgt_fb, args.device),
            timed(teacher_f, args.device),
        )
        t_abn = timed(abn_f, args.device) if args.abn_during_sac else 0.0
        wrapper.zero_grad()
        # Pieces of the overhead.
        samples = pre['data_samples']['target'][: args.target_images]
        x_t = pre['inputs']['target'][: args.target_images]
        holder = {}

        ctx = model.make_context(pre['inputs'], pre['data_samples'])

        def views():
            v, clean, valid = labeller.make_views(x_t, samples)
            holder['v'] = (v, clean, term.noise(ctx, clean, valid), valid)

        t_views = timed(views, args.device)
        v, clean, noisy, valid = holder['v']
        with torch.no_grad():
            probs = model.teacher(clean).softmax(1)

        def fuse_thr():
            with torch.no_grad():
                fused, covered, _, _ = fuse_views(probs, v, valid)
                thr = adaptive_thresholds(fused, covered, labeller.class_prior)
                lab, conf = pseudo_labels(fused, covered, thr)
                holder['l'] = (lab, conf)

        t_fuse = timed(fuse_thr, args.device)
        for p in model.student.parameters():
            p.grad = torch.zeros_like(p)
        t_opt = timed(wrapper.step, args.device)
        wrapper.zero_grad()
        t_ema = timed(lambda: model.teacher.update(model.student), args.device)
        if i >= args.warmup:
            for key, val in (
                ('step_cpu', t_step_cpu),
                ('step', t_step),
                ('passes', t_src + t_tgt + t_teacher + t_abn),
                ('src_fb', t_src),
                ('tgt_fb', t_tgt),
                ('teacher_f', t_teacher),
                ('abn_f', t_abn),
                ('views', t_views),
                ('fuse_thr', t_fuse),
                ('optim', t_opt),
                ('ema', t_ema),
            ):
                res[key].append(val)
    return {key: statistics.median(v) for key, v in res.items()}


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_memory(method: str, args: argparse.Namespace) -> float:
    """Peak memory (MiB) of training steps of ``method`` above the memory held before them
    (model, optimiser state after one step); call in a fresh process."""
    model, wrapper = build(method, args)
    model.train_step(batch(args, 0), wrapper)  # optimiser state exists from here on
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mib()
    peak = [base]
    stop = threading.Event()

    def poll() -> None:  # CPU: sample the resident set size while the steps run
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.002)

    thread = threading.Thread(target=poll, daemon=True)
    if not args.device.startswith('cuda'):
        thread.start()
    for i in range(1, 3):
        model.train_step(batch(args, i), wrapper)
    stop.set()
    if args.device.startswith('cuda'):
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    thread.join()
    return peak[0] - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=10, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--batch', type=int, default=4, help='source (and loaded target) images')
    parser.add_argument('--target-images', type=int, default=2, help='target images per batch')
    parser.add_argument('--views', type=int, default=4, help="SAC's views per target image")
    parser.add_argument('--size', type=int, nargs=2, default=(96, 192), help='crop H W')
    add_device_argument(parser, default='cpu')
    parser.add_argument(
        '--abn-during-sac',
        action='store_true',
        help="as the from-scratch configs: bn_policy='target_only' during "
        'self-training (its no-grad target forward counts as a pass)',
    )
    parser.add_argument(
        '--ema-interval',
        type=int,
        default=100,
        help='teacher update interval (100 in SAC; 1 = per-step EMA)',
    )
    parser.add_argument(
        '--backward-groups',
        action='store_true',
        help="SAC with one backward pass per term group ([['src'], ['sac']]): "
        'only one graph alive at a time',
    )
    parser.add_argument('--repeat', type=int, default=3, help='processes per memory figure')
    parser.add_argument('--memory', action='store_true', help='only the memory table')
    parser.add_argument(
        '--memory-only', choices=['sac', 'abn'], default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps(dict(peak_mib=peak_memory(args.memory_only, args))))
        return
    if args.memory:
        memory_table(args)
        return
    r = step_cost(args)
    # EMATeacherHook updates the teacher every `interval` steps: its amortised cost.
    r['step'] += r['ema'] / args.ema_interval
    passes = r['passes']
    print(
        f'device {args.device}, threads {torch.get_num_threads()}, source {args.batch} + '
        f'target {args.target_images} x {args.views} views at {args.size[0]}x{args.size[1]}, '
        f'median of {args.steps} steps'
    )
    print('| part | ms | share of passes |\n|---|---:|---:|')
    for key, name in (
        ('step', f'SAC train_step + EMA update / {args.ema_interval}'),
        ('passes', 'unavoidable passes (sum)'),
        ('src_fb', '  student fwd+bwd, source'),
        ('tgt_fb', '  student fwd+bwd, target views'),
        ('teacher_f', '  teacher fwd, views'),
        *([('abn_f', '  ABN fwd (no grad), target batch')] if args.abn_during_sac else []),
        ('views', 'views: warp + photometric noise'),
        ('fuse_thr', 'fusion + thresholds + labels'),
        ('optim', 'optimiser step (AdamW)'),
        ('ema', 'teacher EMA update'),
    ):
        print(f'| {name} | {1000 * r[key]:.1f} | {r[key] / passes:.3f} |')
    print(
        f'\nstep / passes = {r["step"] / passes:.3f}  (target <= 1.10); without the '
        f'optimiser step: {(r["step"] - r["optim"]) / passes:.3f}'
    )
    print(f'CPU time of one SAC step (all threads): {r["step_cpu"]:.2f} s')
    memory_table(args)


def measure_memory(method: str, args: argparse.Namespace, groups: bool) -> float:
    """Median over ``args.repeat`` fresh processes of :func:`peak_memory` (MiB).

    On the CPU, glibc keeps freed blocks mapped, so the resident set size lags the live
    tensors; large blocks are mmap-ed and returned at once here (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``), which makes RSS follow the allocations closely.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    cmd = [
        sys.executable,
        __file__,
        '--memory-only',
        method,
        '--device',
        args.device,
        '--batch',
        str(args.batch),
        '--target-images',
        str(args.target_images),
        '--views',
        str(args.views),
        '--size',
        *map(str, args.size),
    ]
    cmd += ['--abn-during-sac'] if args.abn_during_sac else []
    cmd += ['--backward-groups'] if groups else []
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1])['peak_mib'])
    return statistics.median(runs)


def memory_table(args: argparse.Namespace) -> None:
    """Peak memory of ABN, SAC with one backward pass, and SAC with one per term group."""
    mem = {
        'ABN': measure_memory('abn', args, False),
        'SAC, one backward pass': measure_memory('sac', args, False),
        "SAC, backward per term group ([['src'], ['sac']])": measure_memory('sac', args, True),
    }
    kind = 'max allocated' if args.device.startswith('cuda') else 'peak RSS growth'
    print(
        f'\npeak memory of a step ({kind}, median of {args.repeat} processes, '
        f'{args.size[0]}x{args.size[1]}):'
    )
    print('| step | MiB | x ABN |\n|---|---:|---:|')
    for name, mib in mem.items():
        print(f'| {name} | {mib:.0f} | {mib / max(mem["ABN"], 1e-6):.2f} |')


if __name__ == '__main__':
    main()
