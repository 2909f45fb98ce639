"""CamVid day -> dusk benchmark: ABN and the target oracle (and source-only), mean ± std mIoU.

Runs ``tools/train.py`` once per (method, seed), sequentially, and reads each run's
``metrics.json`` (target = test 0001TP, 11 CamVid classes). Usage::

    CAMVID_ROOT=/path/to/camvid nice -n 5 python benchmarks/camvid_day2dusk.py \
        --work-dir work_dirs/bench_camvid_day2dusk

Each run uses one intra-op thread by default (``--threads``): on a small shared CPU, several
threads per process oversubscribe the cores and run slower, not faster.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'abn': 'configs/abn/abn_unet-resnet18_200_camvidday2dusk-128x128.py',
    'oracle': 'configs/oracle/oracle_unet-resnet18_200_camvidday2dusk-128x128.py',
    'source-only': 'configs/source-only/source-only_unet-resnet18_200_camvidday2dusk-128x128.py',
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--methods', nargs='+', default=['abn', 'oracle'], choices=list(CONFIGS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--work-dir', default='work_dirs/bench_camvid_day2dusk')
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads per run')
    p.add_argument('--skip-done', action='store_true',
                   help='reuse runs whose metrics.json and time.json already exist')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='passed to every tools/train.py call, e.g. train_cfg.max_iters=20')
    return p.parse_args()


def run_one(method: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one (method, seed); return its metrics report plus the wall time."""
    wd = osp.join(args.work_dir, f'{method}_seed{seed}')
    metrics, timing = osp.join(wd, 'metrics.json'), osp.join(wd, 'time.json')
    if args.skip_done and osp.isfile(metrics) and osp.isfile(timing):
        with open(metrics) as f, open(timing) as g:
            return dict(json.load(f), wall_s=json.load(g)['wall_s'])
    if osp.isfile(metrics):
        os.remove(metrics)  # never report a stale number from an earlier run
    cmd = [sys.executable, 'tools/train.py', CONFIGS[method], '--work-dir', wd,
           '--seed', str(seed)]
    if args.cfg_options:
        cmd += ['--cfg-options', *args.cfg_options]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    print(f'[{time.strftime("%H:%M:%S")}] {method} seed {seed}: {" ".join(cmd)}', flush=True)
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    wall = time.time() - t0
    os.makedirs(wd, exist_ok=True)
    with open(timing, 'w') as f:
        json.dump(dict(wall_s=wall), f)
    if not osp.isfile(metrics):
        raise FileNotFoundError(f'{metrics} was not written: the run did not validate.')
    with open(metrics) as f:
        report = json.load(f)
    print(f'    mIoU {report["mIoU"]:.2f}  ({wall / 60:.1f} min)', flush=True)
    return dict(report, wall_s=wall)


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def main() -> None:
    args = parse_args()
    results: dict[str, list[dict]] = {}
    t0 = time.time()
    for method in args.methods:
        results[method] = [run_one(method, s, args) for s in args.seeds]
    total = time.time() - t0
    classes = list(results[args.methods[0]][0]['IoU'])
    lines = ['| method | ' + ' | '.join(f'seed {s}' for s in args.seeds)
             + ' | mIoU mean ± std | wall / run |',
             '|---|' + '---:|' * (len(args.seeds) + 2)]
    for method, runs in results.items():
        m = [r['mIoU'] for r in runs]
        wall = statistics.mean(r['wall_s'] for r in runs) / 60
        lines.append(f'| {method} | ' + ' | '.join(f'{v:.2f}' for v in m)
                     + f' | **{mean_std(m)}** | {wall:.1f} min |')
    lines += ['', '| class | ' + ' | '.join(results) + ' |', '|---|' + '---:|' * len(results)]
    for c in classes:
        cells = []
        for runs in results.values():
            v = [r['IoU'][c] for r in runs if r['IoU'].get(c) is not None]
            cells.append(mean_std(v) if v else 'n/a')
        lines.append(f'| {c} | ' + ' | '.join(cells) + ' |')
    table = '\n'.join(lines)
    print(f'\nCamVid day->dusk, target = test 0001TP ({results[args.methods[0]][0]["num_images"]} '
          f'images), mIoU over 11 classes, seeds {args.seeds}; total {total / 60:.1f} min\n')
    print(table)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(dict(results=results, seeds=args.seeds, total_s=total), f, indent=2)
    with open(osp.join(args.work_dir, 'summary.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
