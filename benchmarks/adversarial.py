"""ABN vs AdvEnt vs MinEnt vs AdvEnt+MinEnt (and AdaptSegNet, feature GRL, SAC, the combined
feature-alignment + SAC pipeline) over seeds, on the built-in synthetic shift (demo budget) or
on CamVid day -> dusk (the ABN benchmark's budget).

Runs ``tools/train.py`` for each (seed, method) -- seeds in the outer loop, so an interrupted
sweep still has whole seeds -- ``--jobs`` runs at a time, each with one torch thread
(``OMP_NUM_THREADS=1``), skips runs whose ``metrics.json`` exists, and prints a Markdown table:
target mIoU per seed and mean ± std, the difference to ABN per seed, wall time per run, and
for adversarial runs the discriminator's final accuracy on source / target (mean of the last
logged quarter). The table is also written to ``<out>/summary.md``. Each run's curves
(adversarial and self-training losses, discriminator accuracies, entropy) are written to
``<out>/<method>_seed<k>_curves.csv`` so an unstable run can be inspected.

    python benchmarks/adversarial.py --seeds 0 1 2 --jobs 2 --out work_dirs/bench_adv
    CAMVID_ROOT=/path/to/camvid python benchmarks/adversarial.py --preset camvid --jobs 2
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
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRESETS = {
    'synthetic': dict(
        protocol='synthetic9',
        methods=['ABN', 'AdvEnt', 'MinEnt', 'AdvEnt+MinEnt', 'Combined'],
        configs={
            'ABN': 'configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py',
            'AdvEnt': 'configs/advent/advent_unet-resnet18_400it_synthetic-96x192.py',
            'MinEnt': 'configs/advent/minent_unet-resnet18_400it_synthetic-96x192.py',
            'AdvEnt+MinEnt':
                'configs/advent/advent-minent_unet-resnet18_400it_synthetic-96x192.py',
            'AdaptSegNet':
                'configs/adaptsegnet/adaptsegnet_unet-resnet18_400it_synthetic-96x192.py',
            'FeatureGRL': 'configs/feature_adversarial/'
                          'feature-adversarial_unet-resnet18_400it_synthetic-96x192.py',
            'SAC': 'configs/demo/sac_unet-resnet18_400it_synthetic-96x192.py',
            # SourceCE + FeatureAdversarial + SAC self-training in one two-phase step.
            'Combined': 'configs/sac/'
                        'feature-adversarial-sac_unet-resnet18_400it_synthetic-96x192.py',
        }),
    'camvid': dict(
        protocol='camvid11',
        methods=['ABN', 'AdvEnt', 'MinEnt', 'AdvEnt+MinEnt'],
        configs={
            'ABN': 'configs/abn/abn_unet-resnet18_200_camvidday2dusk-128x128.py',
            'AdvEnt': 'configs/advent/advent_unet-resnet18_200_camvidday2dusk-128x128.py',
            'MinEnt': 'configs/advent/minent_unet-resnet18_200_camvidday2dusk-128x128.py',
            'AdvEnt+MinEnt':
                'configs/advent/advent-minent_unet-resnet18_200_camvidday2dusk-128x128.py',
            'AdaptSegNet':
                'configs/adaptsegnet/adaptsegnet_unet-resnet18_200_camvidday2dusk-128x128.py',
            'SAC': 'configs/sac/sac_unet-resnet18_200_camvidday2dusk-128x128.py',
        }),
}
CURVE_KEYS = ('loss', 'src.loss_ce', 'tgt.loss_adv', 'tgt.loss_ent', 'tgt.loss_sac',
              'tgt.pseudo_ratio', 'disc.loss', 'disc.acc_src', 'disc.acc_tgt')


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


def run(config: str, name: str, seed: int, out: str, extra: list) -> dict:
    """Train one (method, seed) unless its metrics exist; return mIoU, wall time and the
    discriminator's final accuracies, and write the run's curves."""
    work_dir = osp.join(out, f'{_slug(name)}_seed{seed}')
    metrics = osp.join(work_dir, 'metrics.json')
    failed = None
    if not osp.isfile(metrics):
        cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, config),
               '--work-dir', work_dir, '--seed', str(seed)] + extra
        # One torch thread per run: on a small shared CPU more threads oversubscribe the cores.
        env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
        t0 = time.time()
        with open(osp.join(out, f'{_slug(name)}_seed{seed}.log'), 'w') as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
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
    wall = math.nan
    if osp.isfile(osp.join(work_dir, 'wall_time.txt')):
        with open(osp.join(work_dir, 'wall_time.txt')) as f:
            wall = float(f.read())
    miou = math.nan
    if osp.isfile(metrics):
        with open(metrics) as f:
            miou = json.load(f)['mIoU']
    return dict(miou=miou, wall=wall, disc=disc, failed=failed)


def budget_options(config: str, iters: int) -> list:
    """``--cfg-options`` that give ``config`` a budget of ``iters`` iterations: loop length,
    one validation and checkpoint at the end, every scheduler's end (one optimiser or an
    optimiser dict), and a self-training start scaled by the same factor."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    old = cfg.train_cfg.max_iters
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}']
    scheds = cfg.get('param_scheduler', [])
    groups = scheds.items() if isinstance(scheds, dict) else [(None, scheds)]
    for name, group in groups:
        for i, s in enumerate(group if isinstance(group, (list, tuple)) else [group]):
            if s.get('end') is not None:
                key = f'param_scheduler.{i}' if name is None else f'param_scheduler.{name}.{i}'
                opts.append(f'{key}.end={round(s["end"] * iters / old)}')
    start = (cfg.model.get('teacher') or {}).get('start_iter', 0)
    if start:
        opts.append(f'model.teacher.start_iter={round(start * iters / old)}')
    return opts


def fmt(values: list) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return 'n/a'
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{mean:.2f} ± {std:.2f}'


def table(results: dict, seeds: list, protocol: str, jobs: int) -> str:
    lines = [f'| method | target mIoU ({protocol}) | per seed ({", ".join(map(str, seeds))}) '
             f'| - ABN (paired by seed) | D acc src / tgt (last quarter) | wall time / run '
             f'({jobs} parallel) |', '|---|---:|---:|---:|---|---:|']
    for name, rs in results.items():
        delta = ('—' if name == 'ABN' or 'ABN' not in results else
                 fmt([r['miou'] - a['miou'] for r, a in zip(rs, results['ABN'])]))
        accs: dict = {}
        for r in rs:
            for k, v in r['disc'].items():
                accs.setdefault(k, []).append(v)
        src = [k for k in sorted(accs) if k.startswith('disc.acc_src')]
        acc = ', '.join(f"{k[len('disc.acc_src_'):]} {statistics.mean(accs[k]):.2f} / "
                        f"{statistics.mean(accs[k.replace('src', 'tgt')]):.2f}" for k in src)
        per_seed = ' / '.join('n/a' if math.isnan(r['miou']) else f"{r['miou']:.2f}" for r in rs)
        walls = [r['wall'] for r in rs if not math.isnan(r['wall'])]
        wall = f'{statistics.mean(walls):.0f} s' if walls else 'n/a'
        fails = sum(bool(r['failed']) for r in rs)
        lines.append(f"| {name} | {fmt([r['miou'] for r in rs])} | {per_seed} | {delta} | "
                     f"{acc or '—'} | {wall} |" + (f' {fails} run(s) failed' if fails else ''))
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='synthetic',
                        help='synthetic: built-in shift, 400 iterations; camvid: CamVid day -> '
                             'dusk, 200 iterations (data root from CAMVID_ROOT)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=None,
                        help='default: the preset\'s ABN, AdvEnt, MinEnt, AdvEnt+MinEnt '
                             '(+ Combined on synthetic); also AdaptSegNet, SAC (, FeatureGRL)')
    parser.add_argument('--jobs', type=int, default=1, help='runs in parallel')
    parser.add_argument('--out', default=None,
                        help='default: work_dirs/bench_adv (synthetic), work_dirs/bench_adv_camvid')
    parser.add_argument('--iters', type=int, default=None,
                        help='budget of every run (default: the configs\' own, 400 on '
                             'synthetic, 200 on CamVid); schedules and a self-training start '
                             'are scaled to it')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='passed to tools/train.py (e.g. to shorten a smoke run)')
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    methods = args.methods or preset['methods']
    unknown = [m for m in methods if m not in preset['configs']]
    if unknown:
        parser.error(f'--preset {args.preset} has no {unknown}; choose from '
                     f'{sorted(preset["configs"])}.')
    if args.preset == 'camvid':
        root = os.environ.get('CAMVID_ROOT', osp.join(ROOT, 'data', 'camvid'))
        if not osp.isdir(root):
            parser.error(f'CamVid not found at {root}: set CAMVID_ROOT to the folder holding '
                         'train/, trainannot/, test/ ... (docs/datasets.md).')
    out = args.out or ('work_dirs/bench_adv' if args.preset == 'synthetic'
                       else 'work_dirs/bench_adv_camvid')
    os.makedirs(out, exist_ok=True)
    extra = {}
    for name in methods:
        opts = budget_options(preset['configs'][name], args.iters) if args.iters else []
        opts += args.cfg_options
        extra[name] = ['--cfg-options'] + opts if opts else []
    order = [(seed, name) for seed in args.seeds for name in methods]
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {key: pool.submit(run, preset['configs'][key[1]], key[1], key[0], out,
                                    extra[key[1]]) for key in order}
        for seed, name in order:  # report in submission order
            r = futures[(seed, name)].result()
            print(f'{name} seed {seed}: mIoU {r["miou"]:.2f} ({r["wall"]:.0f} s)'
                  + (f' FAILED: {r["failed"]}' if r['failed'] else ''), flush=True)
    results = {name: [futures[(seed, name)].result() for seed in args.seeds] for name in methods}
    md = table(results, args.seeds, preset['protocol'], args.jobs)
    print(f'\n{args.preset}: seeds {args.seeds}, {args.jobs} parallel job(s), '
          f'total {(time.time() - t0) / 60:.1f} min\n\n{md}')
    with open(osp.join(out, 'summary.md'), 'w') as f:
        f.write(md + '\n')


if __name__ == '__main__':
    main()
