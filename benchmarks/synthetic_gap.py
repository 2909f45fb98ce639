"""ABN vs target oracle on the built-in synthetic shift, at the demo budget, over seeds.

Runs ``tools/train.py`` for each (config, seed), reads each run's ``metrics.json`` and the
per-iteration ``time`` / ``data_time`` scalars, and prints a Markdown table: target mIoU
(mean ± std), the oracle - ABN gap, training throughput (images/s, source + target images per
iteration over the mean iteration time) and the share of step time spent waiting for data.

    python benchmarks/synthetic_gap.py --seeds 0 1 2 --out work_dirs/bench_gap
"""
import argparse
import concurrent.futures
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'ABN': 'configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py',
    'oracle': 'configs/demo/oracle_unet-resnet18_400it_synthetic-96x192.py',
}
IMAGES_PER_ITER = {'ABN': 8, 'oracle': 4}  # source 4 (+ target 4 forwarded for ABN)


def run(name: str, seed: int, out: str, extra: list) -> dict:
    work_dir = osp.join(out, f'{name}_seed{seed}')
    metrics = osp.join(work_dir, 'metrics.json')
    if not osp.isfile(metrics):
        cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, CONFIGS[name]),
               '--work-dir', work_dir, '--seed', str(seed)] + extra
        t0 = time.time()
        with open(osp.join(out, f'{name}_seed{seed}.log'), 'w') as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        with open(osp.join(work_dir, 'wall_time.txt'), 'w') as f:
            f.write(f'{time.time() - t0:.1f}\n')
    with open(metrics) as f:
        miou = json.load(f)['mIoU']
    times, data_times = [], []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if 'data_time' in d and 'loss' in d:
                    times.append(d['time'])
                    data_times.append(d['data_time'])
    with open(osp.join(work_dir, 'wall_time.txt')) as f:
        wall = float(f.read())
    t = statistics.mean(times[1:] or times)  # the first logged window includes start-up
    dt = statistics.mean(data_times[1:] or data_times)
    return dict(miou=miou, ips=IMAGES_PER_ITER[name] / t, data_share=dt / t, wall=wall)


def fmt(values: list) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{mean:.2f} ± {std:.2f}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--out', default='work_dirs/bench_gap')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at a time (each then uses 1 CPU thread)')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='passed to tools/train.py (e.g. to shorten a smoke run)')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    extra = ['--cfg-options'] + args.cfg_options if args.cfg_options else []
    if args.jobs > 1:
        os.environ['OMP_NUM_THREADS'] = '1'
    jobs = [(name, s) for s in args.seeds for name in CONFIGS]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run(j[0], j[1], args.out, extra), jobs)))
    results = {name: [done[(name, s)] for s in args.seeds] for name in CONFIGS}
    print(f'| run | target mIoU (synthetic9) | images/s | data wait | wall time / run |')
    print('|---|---:|---:|---:|---:|')
    for name, rs in results.items():
        print(f"| {name} | {fmt([r['miou'] for r in rs])} | {fmt([r['ips'] for r in rs])} | "
              f"{100 * statistics.mean(r['data_share'] for r in rs):.1f}% | "
              f"{statistics.mean(r['wall'] for r in rs):.0f} s |")
    gaps = [o['miou'] - a['miou'] for a, o in zip(results['ABN'], results['oracle'])]
    print(f'\noracle - ABN gap: {fmt(gaps)} mIoU points over seeds {args.seeds}')


if __name__ == '__main__':
    main()
