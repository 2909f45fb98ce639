"""Soak test: resident memory of long runs (issue 25, item 6).

Trains SAC and UniMatch on the built-in synthetic scenes for ``--iters`` iterations through the
Runner, with the configs' persistent data-loader workers (1), and samples the resident memory
of the main process and of its worker processes every ``--every`` iterations: the anonymous
part (``RssAnon``: heap and tensors, what a leak grows) and the whole ``VmRSS`` (which also
counts pages of mapped libraries that the kernel drops and reloads under memory pressure).
First (the shortest) it runs ``tools/infer.py`` in this process over ``--images`` small PNGs
and samples the same every 100 images. The report per run: the anonymous memory at the end of
the warm-up, at the end, and its growth per 1000 iterations (images) after the warm-up as the
slope of a least-squares line through the samples, in MiB and in percent of the value at the
end of the warm-up (goal < 1 %).

Validation and checkpoints are off (they run at their own intervals in a real run and are
covered by the resume tests); logging stays on at the configs' interval, since the message
hub's history is one of the things that could grow. Scenes are rendered at ``--size``
(default 32x64; UniMatch's crop becomes 32x32) with ``--batch`` 2 images per branch, to fit a
few thousand iterations on a shared CPU; the network, the methods' steps, the workers and the
hooks are the configs'.

    nice -n 10 python benchmarks/soak.py --iters 2000 --warmup 400 --every 25 --images 2000 \
        --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import runpy
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = {
    'sac': 'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py',
    'unimatch': 'configs/semi/unimatch_unet-resnet18_400_synthetic-1of16-96x96.py',
}
PAGE = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096


def memory_mib(pid: int) -> tuple[float, float]:
    """``(RssAnon, VmRSS)`` of one process in MiB (``/proc/<pid>/status``), zeros when gone.

    The anonymous part (heap, tensors) is what a leak grows. The whole RSS also counts pages
    of mapped files (torch's libraries), which the kernel drops and reloads as other processes
    need memory, so on a shared machine it moves by a hundred MiB without any leak.
    """
    found = {}
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key in ('RssAnon', 'VmRSS'):
                    found[key] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    return found.get('RssAnon', 0.0), found.get('VmRSS', 0.0)


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the data-loader workers of the main process)."""
    found = []
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{task}/children') as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found


def sample() -> dict[str, float]:
    """Anonymous resident memory of this process and of its children (workers), and the
    whole RSS of both, MiB."""
    me = os.getpid()
    workers = [memory_mib(c) for c in children(me)]
    main = memory_mib(me)
    anon_workers = sum(w[0] for w in workers)
    return dict(
        main=main[0],
        workers=anon_workers,
        total=main[0] + anon_workers,
        rss=main[1] + sum(w[1] for w in workers),
    )


def growth(points: list[tuple[int, dict[str, float]]], warmup: int) -> dict[str, Any]:
    """Least-squares slope of RSS over the samples after ``warmup``, per 1000 steps."""
    after = [(x, s) for x, s in points if x >= warmup]
    if len(after) < 3:
        raise ValueError(f'{len(after)} samples after the warm-up; run longer or sample more.')
    xs = np.array([x for x, _ in after], float)
    out: dict[str, Any] = dict(samples=len(after), first_step=int(xs[0]), last_step=int(xs[-1]))
    for key in ('main', 'workers', 'total', 'rss'):
        if not all(key in s for _, s in after):
            continue
        ys = np.array([s[key] for _, s in after], float)
        slope = float(np.polyfit(xs, ys, 1)[0]) * 1000
        # Theil-Sen: the median of the pairwise slopes, robust to the allocator's transient
        # steps of 9-36 MiB that dominate a least-squares line over a few hundred steps.
        i, j = np.triu_indices(len(xs), 1)
        robust = float(np.median((ys[j] - ys[i]) / (xs[j] - xs[i]))) * 1000
        out[key] = dict(
            at_warmup_mib=round(float(ys[0]), 1),
            at_end_mib=round(float(ys[-1]), 1),
            growth_mib_per_1000=round(slope, 2),
            growth_pct_per_1000=round(100 * slope / ys[0], 3) if ys[0] else None,
            robust_mib_per_1000=round(robust, 2),
            robust_pct_per_1000=round(100 * robust / ys[0], 3) if ys[0] else None,
        )
    return out


def soak_training(
    method: str,
    iters: int,
    warmup: int,
    every: int,
    size: tuple,
    batch: int,
    work: str,
    progress: Optional[str] = None,
    scene_cache: bool = False,
) -> dict:
    """Train ``method`` for ``iters`` iterations, sampling RSS every ``every``; the samples so
    far are rewritten to ``progress`` (JSON) at each sample, for ``--report`` on a run cut
    short."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from uda.engine.config import load_config

    cfg = load_config(osp.join(ROOT, CONFIGS[method]), None, osp.join(work, method))
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.param_scheduler = [
        dict(s, end=iters) if isinstance(s, dict) and 'end' in s else s
        for s in (cfg.param_scheduler or [])
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, by_epoch=False)
    cfg.default_hooks.pop('visualization', None)
    cfg.log_level = 'WARNING'
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    if (cfg.model.get('teacher') or {}).get('start_iter', 0):
        cfg.model.teacher.start_iter = 0  # soak the self-training step, not the warm-up
    branches = cfg.train_dataloader.dataset.branches
    for branch in branches.values():
        scenes = branch.get('dataset', branch)  # SemiSplit wraps the scenes
        scenes['size'] = size
        # The scene cache holds num_samples * H * W * 4 bytes per worker by design
        # (uda/data/synthetic.py); it fills over the first few thousand draws and would show
        # as growth until every scene has been drawn. Off unless --scene-cache.
        scenes['cache'] = scene_cache
        for t in scenes.get('pipeline') or []:
            if t.get('type') == 'RandomCrop':  # UniMatch's square crop, at the scene height
                t['height'] = t['width'] = size[0]
    loader = cfg.train_dataloader
    loader.batch_size = batch
    assert loader.num_workers >= 1 and loader.persistent_workers, 'the soak needs workers'
    points: list[tuple[int, dict[str, float]]] = []
    started = time.time()

    class RSSHook(Hook):
        priority = 'LOWEST'

        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            step = runner.iter + 1
            if step % every == 0 or step == 1:
                points.append((step, sample()))
                if progress:
                    with open(progress, 'w') as f:
                        json.dump(dict(method=method, warmup=warmup, points=points), f)
                s = points[-1][1]
                print(
                    f'{method} iter {step}: anonymous memory main {s["main"]:.1f} MiB, workers '
                    f'{s["workers"]:.1f} MiB, RSS {s["rss"]:.1f} MiB '
                    f'({time.time() - started:.0f} s)',
                    flush=True,
                )

    runner = Runner.from_cfg(cfg)
    runner.register_hook(RSSHook())
    runner.train()
    wall = time.time() - started
    return dict(
        method=method,
        config=CONFIGS[method],
        iters=iters,
        warmup=warmup,
        size=list(size),
        batch=batch,
        scene_cache=scene_cache,
        workers=loader.num_workers,
        threads=torch.get_num_threads(),
        wall_s=round(wall, 1),
        growth=growth(points, warmup),
        points=[(x, {k: round(v, 2) for k, v in s.items()}) for x, s in points],
    )


def soak_infer(images: int, warmup: int, work: str) -> dict:
    import torch
    from mmengine.config import Config
    from PIL import Image

    from uda.registry import MODELS

    config = osp.join(ROOT, CONFIGS['sac'])
    cfg = Config.fromfile(config)
    net = MODELS.build(cfg.model.segmentor)
    ckpt = osp.join(work, 'random_weights.pth')
    torch.save({'state_dict': {f'student.{k}': v for k, v in net.state_dict().items()}}, ckpt)
    folder = osp.join(work, 'images')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(images):
        path = osp.join(folder, f'{i:05d}.png')
        if not osp.isfile(path):
            h, w = (int(v) for v in rng.integers(48, 97, 2))
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    tool = runpy.run_path(osp.join(ROOT, 'tools/infer.py'), run_name='soak')
    points: list[tuple[int, dict[str, float]]] = []
    save: Callable = tool['save_prediction']
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> None:
        save(*args, **kwargs)
        count[0] += 1
        if count[0] % 100 == 0 or count[0] == 1:
            points.append((count[0], sample()))

    tool['main'].__globals__['save_prediction'] = counted
    sys.argv = [
        'infer.py',
        folder,
        '--model',
        ckpt,
        '--config',
        config,
        '--out-dir',
        osp.join(work, 'pred'),
    ]
    started = time.time()
    tool['main']()
    return dict(
        method='tools/infer.py',
        config=CONFIGS['sac'],
        images=images,
        warmup=warmup,
        threads=torch.get_num_threads(),
        wall_s=round(time.time() - started, 1),
        growth=growth(points, warmup),
        points=[(x, {k: round(v, 2) for k, v in s.items()}) for x, s in points],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--methods',
        nargs='*',
        default=['sac', 'unimatch'],
        choices=list(CONFIGS),
        help='methods trained',
    )
    parser.add_argument('--iters', type=int, default=3000, help='training iterations per method')
    parser.add_argument('--warmup', type=int, default=500, help='iterations before the fit')
    parser.add_argument('--every', type=int, default=50, help='sample RSS every N iterations')
    parser.add_argument('--size', type=int, nargs=2, default=[32, 64], help='scene H W')
    parser.add_argument('--batch', type=int, default=2, help='images per branch')
    parser.add_argument(
        '--scene-cache', action='store_true', help="keep the synthetic scenes' cache on"
    )
    parser.add_argument('--images', type=int, default=2000, help='tools/infer.py images (0: skip)')
    parser.add_argument(
        '--image-warmup', type=int, default=200, help='tools/infer.py images before the fit'
    )
    parser.add_argument('--work-dir', default=None, help='default: a temporary folder')
    parser.add_argument('--out', default=None, help='write the report as JSON here')
    parser.add_argument(
        '--report',
        nargs='+',
        default=None,
        help='only report the growth from the progress files (OUT.<method>.progress.json) of '
        'runs cut short',
    )
    parser.add_argument(
        '--report-warmup', type=int, default=None, help='with --report: fit after this step'
    )
    args = parser.parse_args()
    if args.report:
        for path in args.report:
            with open(path) as f:
                run = json.load(f)
            warm = run['warmup'] if args.report_warmup is None else args.report_warmup
            fit = growth([(x, s) for x, s in run['points']], warm)
            print(json.dumps(dict(method=run['method'], growth=fit)))
        return
    import torch

    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    work = args.work_dir or tempfile.mkdtemp(prefix='uda_soak_')
    os.makedirs(work, exist_ok=True)
    results = []
    if args.images:
        results.append(soak_infer(args.images, args.image_warmup, work))
        print(json.dumps({k: v for k, v in results[-1].items() if k != 'points'}), flush=True)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(results, f, indent=1)
    for method in args.methods:
        results.append(
            soak_training(
                method,
                args.iters,
                args.warmup,
                args.every,
                tuple(args.size),
                args.batch,
                work,
                f'{args.out}.{method}.progress.json' if args.out else None,
                args.scene_cache,
            )
        )
        print(json.dumps({k: v for k, v in results[-1].items() if k != 'points'}), flush=True)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(results, f, indent=1)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
    print(
        '\n| run | steps | threads | wall s | anonymous memory after warm-up, MiB '
        '(main + workers) | growth / 1000 steps | goal < 1 % |'
    )
    print('|---|---:|---:|---:|---:|---:|---|')
    for r in results:
        g = r['growth']['total']
        steps = r.get('iters', r.get('images'))
        print(
            f'| {r["method"]} | {steps} | {r["threads"]} | {r["wall_s"]:.0f} | '
            f'{g["at_warmup_mib"]:.1f} | {g["growth_mib_per_1000"]:+.2f} MiB '
            f'({g["growth_pct_per_1000"]:+.3f} %) | '
            f'{"yes" if abs(g["growth_pct_per_1000"]) < 1 else "no"} |'
        )


if __name__ == '__main__':
    main()
