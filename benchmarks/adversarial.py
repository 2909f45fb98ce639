"""ABN vs AdvEnt vs MinEnt vs AdvEnt+MinEnt (and AdaptSegNet / feature GRL) on the built-in
synthetic shift, at the demo budget, over seeds.

Runs ``tools/train.py`` for each (seed, method) -- seeds in the outer loop, so an interrupted
sweep still has whole seeds -- skips runs whose ``metrics.json`` exists, and prints a Markdown
table: target mIoU (mean ± std), the difference to ABN per seed, wall time per run, and for
adversarial runs the discriminator's final accuracy on source / target (mean of the last
logged quarter). Each run's curves (adversarial losses, discriminator accuracies, entropy)
are written to ``<out>/<method>_seed<k>_curves.csv`` so an unstable run can be inspected.

    python benchmarks/adversarial.py --seeds 0 1 2 --out work_dirs/bench_adv
"""
import argparse
import csv
import glob
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'ABN': 'configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py',
    'AdvEnt': 'configs/advent/advent_unet-resnet18_400it_synthetic-96x192.py',
    'MinEnt': 'configs/advent/minent_unet-resnet18_400it_synthetic-96x192.py',
    'AdvEnt+MinEnt': 'configs/advent/advent-minent_unet-resnet18_400it_synthetic-96x192.py',
    'AdaptSegNet': 'configs/adaptsegnet/adaptsegnet_unet-resnet18_400it_synthetic-96x192.py',
    'FeatureGRL': 'configs/feature_adversarial/'
                  'feature-adversarial_unet-resnet18_400it_synthetic-96x192.py',
}
CURVE_KEYS = ('loss', 'src.loss_ce', 'tgt.loss_adv', 'tgt.loss_ent', 'disc.loss', 'disc.acc_src',
              'disc.acc_tgt')


def _slug(name: str) -> str:
    return name.replace('+', '-').lower()


def read_curves(work_dir: str) -> list:
    rows = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if 'loss' in d:
                    rows.append(d)
    rows.sort(key=lambda d: d['iter'])
    return rows


def run(name: str, seed: int, out: str, extra: list) -> dict:
    work_dir = osp.join(out, f'{_slug(name)}_seed{seed}')
    metrics = osp.join(work_dir, 'metrics.json')
    failed = None
    if not osp.isfile(metrics):
        cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, CONFIGS[name]),
               '--work-dir', work_dir, '--seed', str(seed)] + extra
        t0 = time.time()
        with open(osp.join(out, f'{_slug(name)}_seed{seed}.log'), 'w') as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, 'wall_time.txt'), 'w') as f:
            f.write(f'{time.time() - t0:.1f}\n')
        if proc.returncode != 0:  # e.g. FloatingPointError of a diverged run: a finding
            failed = f'exit code {proc.returncode}, see {log.name}'
    rows = read_curves(work_dir)
    keys = sorted({k for r in rows for k in r if k.startswith(CURVE_KEYS)})
    with open(osp.join(out, f'{_slug(name)}_seed{seed}_curves.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['iter'] + keys)
        for r in rows:
            w.writerow([r['iter']] + [r.get(k, '') for k in keys])
    tail = rows[-max(1, len(rows) // 4):]
    disc = {k: statistics.mean(r[k] for r in tail if k in r)
            for k in keys if k.startswith('disc.acc') and any(k in r for r in tail)}
    with open(osp.join(work_dir, 'wall_time.txt')) as f:
        wall = float(f.read())
    miou = math.nan
    if osp.isfile(metrics):
        with open(metrics) as f:
            miou = json.load(f)['mIoU']
    return dict(miou=miou, wall=wall, disc=disc, failed=failed)


def fmt(values: list) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return 'n/a'
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{mean:.2f} ± {std:.2f}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=['ABN', 'AdvEnt', 'MinEnt',
                                                         'AdvEnt+MinEnt'],
                        choices=sorted(CONFIGS))
    parser.add_argument('--out', default='work_dirs/bench_adv')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='passed to tools/train.py (e.g. to shorten a smoke run)')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    extra = ['--cfg-options'] + args.cfg_options if args.cfg_options else []
    results: dict = {m: [] for m in args.methods}
    for seed in args.seeds:
        for name in args.methods:
            results[name].append(run(name, seed, args.out, extra))
            r = results[name][-1]
            print(f'{name} seed {seed}: mIoU {r["miou"]:.2f} ({r["wall"]:.0f} s)'
                  + (f' FAILED: {r["failed"]}' if r['failed'] else ''), flush=True)
    print('\n| method | target mIoU (synthetic9) | - ABN (paired by seed) | D acc src / tgt '
          '(last quarter) | wall time / run |')
    print('|---|---:|---:|---|---:|')
    for name, rs in results.items():
        delta = ('—' if name == 'ABN' or 'ABN' not in results else
                 fmt([r['miou'] - a['miou'] for r, a in zip(rs, results['ABN'])]))
        accs = {}
        for r in rs:
            for k, v in r['disc'].items():
                accs.setdefault(k, []).append(v)
        src = [k for k in sorted(accs) if k.startswith('disc.acc_src')]
        acc = ', '.join(f"{k[len('disc.acc_src_'):]} {statistics.mean(accs[k]):.2f} / "
                        f"{statistics.mean(accs[k.replace('src', 'tgt')]):.2f}" for k in src)
        fails = sum(bool(r['failed']) for r in rs)
        print(f"| {name} | {fmt([r['miou'] for r in rs])} | {delta} | {acc or '—'} | "
              f"{statistics.mean(r['wall'] for r in rs):.0f} s |"
              + (f' {fails} run(s) failed' if fails else ''))


if __name__ == '__main__':
    main()
