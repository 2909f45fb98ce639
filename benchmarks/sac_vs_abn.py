"""SAC against ABN (and the target oracle) over seeds, on the synthetic shift or CamVid.

For each seed: the ABN run (``--abn-dirs`` reuses finished ABN work dirs, e.g. from
``benchmarks/synthetic_gap.py``; otherwise ABN is trained here), then SAC:

* ``--mode warm``: ``load_from`` the ABN run's checkpoint ``--start-ckpt``, fresh schedule
  (the reference's warm start; add ``model.teacher.start_iter=0`` and the iteration budget to
  ``--sac-options``);
* ``--mode scratch``: the SAC config as it is (one run: ABN warm-up, then self-training), at
  the ABN config's budget.

Prints a Markdown table of target mIoU (mean ± std), every validation of every run, and the
share of the ABN -> oracle gap that SAC closes.

    python benchmarks/sac_vs_abn.py --preset camvid --seeds 0 1 2 --mode scratch
    python benchmarks/sac_vs_abn.py --preset synthetic --seeds 0 1 2 --mode warm \
        --start-ckpt iter_400.pth --abn-dirs A0 A1 A2 --oracle-dirs O0 O1 O2 --sac-options \
        model.teacher.start_iter=0 train_cfg.max_iters=40 train_cfg.val_interval=40 \
        param_scheduler.0.end=40 optim_wrapper.optimizer.lr=5e-4
"""
import argparse
import glob
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRESETS = {
    'synthetic': dict(
        abn='configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py',
        oracle='configs/demo/oracle_unet-resnet18_400it_synthetic-96x192.py',
        sac='configs/demo/sac_unet-resnet18_400it_synthetic-96x192.py'),
    'camvid': dict(
        abn='configs/abn/abn_unet-resnet18_200_camvidday2dusk-128x128.py',
        oracle='configs/oracle/oracle_unet-resnet18_200_camvidday2dusk-128x128.py',
        sac='configs/sac/sac_unet-resnet18_200_camvidday2dusk-128x128.py'),
}


def val_mious(work_dir: str) -> list:
    """mIoU of every validation in a run's log, in order."""
    out = []
    for log in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))):
        with open(log) as f:
            for line in f:
                m = re.search(r'Iter\(val\).*?mIoU: ([0-9.]+)', line)
                if m:
                    out.append(float(m.group(1)))
    return out


def train(config: str, work_dir: str, seed: int, extra: list) -> float:
    if val_mious(work_dir) and osp.isfile(osp.join(work_dir, 'metrics.json')):
        return 0.0  # finished before
    cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, config),
           '--work-dir', work_dir, '--seed', str(seed)] + extra
    t0 = time.time()
    os.makedirs(work_dir, exist_ok=True)
    with open(work_dir + '.log', 'w') as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return time.time() - t0


def fmt(values: list) -> str:
    if not values:
        return 'n/a'
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.2f} ± {std:.2f}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='synthetic')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--out', default='work_dirs/bench_sac')
    parser.add_argument('--abn-dirs', nargs='*', default=None,
                        help='finished ABN work dirs, one per seed (else ABN is trained)')
    parser.add_argument('--oracle-dirs', nargs='*', default=None,
                        help='finished oracle work dirs, one per seed (else not run)')
    parser.add_argument('--run-oracle', action='store_true', help='train the oracle here')
    parser.add_argument('--start-ckpt', default='iter_200.pth')
    parser.add_argument('--mode', choices=['warm', 'scratch'], default='scratch')
    parser.add_argument('--sac-options', nargs='*', default=[])
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    os.makedirs(args.out, exist_ok=True)
    rows = dict(ABN=[], SAC=[], oracle=[])
    walls = dict(SAC=[])
    for k, seed in enumerate(args.seeds):
        abn_dir = (args.abn_dirs[k] if args.abn_dirs else
                   osp.join(args.out, f'abn_seed{seed}'))
        if not args.abn_dirs:
            train(preset['abn'], abn_dir, seed, [])
        ckpt = osp.join(abn_dir, args.start_ckpt)
        sac_dir = osp.join(args.out, f'sac_seed{seed}')
        opts = ([f'load_from={ckpt}'] if args.mode == 'warm' else []) + args.sac_options
        walls['SAC'].append(train(preset['sac'], sac_dir, seed,
                                  ['--cfg-options'] + opts if opts else []))
        rows['ABN'].append(val_mious(abn_dir))
        rows['SAC'].append(val_mious(sac_dir))
        if args.oracle_dirs:
            rows['oracle'].append(val_mious(args.oracle_dirs[k]))
        elif args.run_oracle:
            odir = osp.join(args.out, f'oracle_seed{seed}')
            train(preset['oracle'], odir, seed, [])
            rows['oracle'].append(val_mious(odir))
    print(f'preset {args.preset}, seeds {args.seeds}, SAC mode {args.mode} '
          f'({args.start_ckpt} if warm), options {args.sac_options}')
    print('| run | every validation (per seed) | final target mIoU |\n|---|---|---:|')
    finals = {}
    for name, per_seed in rows.items():
        if not per_seed:
            continue
        finals[name] = [v[-1] for v in per_seed if v]
        print(f"| {name} | {'; '.join(', '.join(f'{x:.2f}' for x in v) for v in per_seed)} | "
              f'{fmt(finals[name])} |')
    if finals.get('oracle') and finals.get('ABN') and finals.get('SAC'):
        closed = [(s - a) / (o - a) for a, s, o in
                  zip(finals['ABN'], finals['SAC'], finals['oracle']) if o != a]
        print(f'\nshare of the ABN -> oracle gap closed by SAC: {fmt(closed)}')
    print(f"SAC wall time per run: {fmt(walls['SAC'])} s")


if __name__ == '__main__':
    main()
