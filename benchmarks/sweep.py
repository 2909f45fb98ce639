"""Run (config, cfg-options) x seeds with tools/train.py and report mean ± std and paired deltas.

Every benchmark in benchmarks/README.md that compares methods over seeds is this script with a
preset or a list of ``--run NAME CONFIG [KEY=VALUE ...]``. Each run is a subprocess of
``tools/train.py CONFIG --work-dir OUT/<name>_seed<k> --seed k --cfg-options ...`` with one
torch thread (``OMP_NUM_THREADS=1``: on a small shared CPU more threads oversubscribe the
cores); ``--jobs`` of them at a time, seeds in the outer loop so an interrupted sweep still has
whole seeds. A run that finished before (``sweep_run.json`` next to its ``metrics.json``) is
reused; a failed one (e.g. the FloatingPointError of a diverged run) is reported, not fatal.

The report (printed, ``OUT/summary.md``, ``OUT/summary.json``; per-class tables in
``OUT/<name>.md``) uses ``uda.evaluation.seed_report``: target mIoU mean ± sample std (n), the
per-seed values, the difference to ``--baseline`` paired by seed, with ``--oracle`` the share of
the baseline -> oracle gap each run closes, the last-quarter mean of logged scalars named by
``--scalars`` (e.g. the discriminators' ``disc.acc``), and the wall time per run.

    python benchmarks/sweep.py --preset synthetic-gap --seeds 0 1 2 --jobs 2
    python benchmarks/sweep.py --run ABN configs/demo/abn_unet-resnet18_400_synthetic-96x192.py \
        --run SAC-w2 configs/demo/sac_unet-resnet18_400_synthetic-96x192.py \
        model.terms.sac.weight=2.0 --baseline ABN --seeds 0 1 2 --out work_dirs/bench_sac_w2

Option values may use ``{seed}`` and ``{out}`` (e.g. ``load_from={out}/abn_seed{seed}/
iter_400.pth`` to warm-start from an earlier sweep's run of the same seed), and with
``--pretrained PRETRAIN_CONFIG`` ``{encoder}``: the path of that config's pretrained encoder,
made first when it is not cached (benchmarks/pretrained_encoder.py).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
from uda.evaluation.seed_plots import (  # noqa: E402
    add_images_to_tensorboard,
    plot_class_deltas,
    plot_curves,
)
from uda.evaluation.seed_report import mean_std, seed_report  # noqa: E402

SYN = 'configs/demo/{}_unet-resnet18_400_synthetic-96x192.py'
CAMVID = 'configs/{}_unet-resnet18_200_camvidday2dusk-128x128.py'
SEMI_CAMVID = 'configs/semi/{}_unet-resnet18_200_camvid-{}-128x128.py'
SEMI_SYN = 'configs/semi/{}_unet-resnet18_400_synthetic-1of16-96x96.py'
SEMI_METHODS = [
    ('supervised', 'supervised'),
    ('mean-teacher', 'mean-teacher'),
    ('FixMatch', 'fixmatch'),
    ('UniMatch', 'unimatch'),
]
# Options of a run warm-started from a converged baseline (benchmarks/converged.py), and of a
# warm-started run with a teacher (initialised from the loaded weights at once).
WARM = 'load_from={{converged:{base}}}'
TEACHER0 = ['model.teacher.start_iter=0']
# name -> (runs as (name, config, options), the runs run by default, baseline, oracle, notes).
# The former scripts synthetic_gap.py, camvid_day2dusk.py, adversarial.py and sac_vs_abn.py.
PRESETS: dict[str, dict[str, Any]] = {
    'synthetic-gap': dict(
        runs=[('ABN', SYN.format('abn'), []), ('oracle', SYN.format('oracle'), [])],
        baseline='ABN',
        oracle='oracle',
        out='work_dirs/bench_gap',
    ),
    'camvid-day2dusk': dict(
        runs=[
            ('ABN', CAMVID.format('abn/abn'), []),
            ('oracle', CAMVID.format('oracle/oracle'), []),
            ('source-only', CAMVID.format('source-only/source-only'), []),
        ],
        default=['ABN', 'oracle'],
        baseline='ABN',
        oracle='oracle',
        camvid=True,
        out='work_dirs/bench_camvid_day2dusk',
    ),
    'adversarial-synthetic': dict(
        runs=[
            ('ABN', SYN.format('abn'), []),
            ('AdvEnt', 'configs/advent/advent_unet-resnet18_400_synthetic-96x192.py', []),
            ('MinEnt', 'configs/advent/minent_unet-resnet18_400_synthetic-96x192.py', []),
            (
                'AdvEnt+MinEnt',
                'configs/advent/advent-minent_unet-resnet18_400_synthetic-96x192.py',
                [],
            ),
            # SourceCE + FeatureAdversarial + SAC self-training in one two-phase step.
            (
                'Combined',
                'configs/sac/feature-adversarial-sac_unet-resnet18_400_synthetic-96x192.py',
                [],
            ),
            (
                'AdaptSegNet',
                'configs/adaptsegnet/adaptsegnet_unet-resnet18_400_synthetic-96x192.py',
                [],
            ),
            (
                'FeatureGRL',
                'configs/feature_adversarial/'
                'feature-adversarial_unet-resnet18_400_synthetic-96x192.py',
                [],
            ),
            ('SAC', SYN.format('sac'), []),
        ],
        default=['ABN', 'AdvEnt', 'MinEnt', 'AdvEnt+MinEnt', 'Combined'],
        baseline='ABN',
        scalars=['disc.acc'],
        out='work_dirs/bench_adv',
    ),
    'adversarial-camvid': dict(
        runs=[
            ('ABN', CAMVID.format('abn/abn'), []),
            ('AdvEnt', CAMVID.format('advent/advent'), []),
            ('MinEnt', CAMVID.format('advent/minent'), []),
            ('AdvEnt+MinEnt', CAMVID.format('advent/advent-minent'), []),
            ('AdaptSegNet', CAMVID.format('adaptsegnet/adaptsegnet'), []),
            ('SAC', CAMVID.format('sac/sac'), []),
        ],
        default=['ABN', 'AdvEnt', 'MinEnt', 'AdvEnt+MinEnt'],
        baseline='ABN',
        scalars=['disc.acc'],
        camvid=True,
        out='work_dirs/bench_adv_camvid',
    ),
    'sac-vs-abn-synthetic': dict(
        runs=[
            ('ABN', SYN.format('abn'), []),
            ('SAC', SYN.format('sac'), []),
            ('oracle', SYN.format('oracle'), []),
        ],
        baseline='ABN',
        oracle='oracle',
        out='work_dirs/bench_sac',
    ),
    'sac-vs-abn-camvid': dict(
        runs=[
            ('ABN', CAMVID.format('abn/abn'), []),
            ('SAC', CAMVID.format('sac/sac'), []),
            ('oracle', CAMVID.format('oracle/oracle'), []),
        ],
        baseline='ABN',
        oracle='oracle',
        camvid=True,
        out='work_dirs/bench_sac_camvid',
    ),
    # Semi-supervised CamVid (configs/semi/, docs/semi_supervised.md): 1/8 (46 labelled frames)
    # and 1/4 (92) of the 367 train frames, scored on the 233 test frames; supervised-only vs
    # mean teacher vs FixMatch vs UniMatch at one budget (UNet-ResNet-18, 128x128, 200
    # iterations); the gain is reported against supervised-only. Random-init encoders.
    'semi-camvid': dict(
        runs=[
            (f'{name}-{frac}', SEMI_CAMVID.format(method, frac), [])
            for frac in ('1of8', '1of4')
            for name, method in SEMI_METHODS
        ],
        default=[f'{name}-1of8' for name, _ in SEMI_METHODS],
        baseline='supervised-1of8',
        camvid=True,
        out='work_dirs/bench_semi_camvid',
    ),
    'semi-synthetic': dict(
        runs=[(name, SEMI_SYN.format(method), []) for name, method in SEMI_METHODS],
        baseline='supervised',
        out='work_dirs/bench_semi_synthetic',
    ),
    # Accuracy cost of mixed precision (issue 16): the SAC demo in fp32 and under bf16
    # autocast (uda.engine.amp: CPU autocast here, AmpOptimWrapper on a GPU), paired by seed.
    'sac-bf16-synthetic': dict(
        runs=[('SAC', SYN.format('sac'), []), ('SAC-bf16', SYN.format('sac'), ['amp=bf16'])],
        baseline='SAC',
        out='work_dirs/bench_sac_bf16',
    ),
    # Memory (issue 16): SAC's 8 target views 2 at a time (SACSelfTraining.views_per_pass) with
    # one backward pass per term, 1.26x ABN's peak memory instead of 2.72x
    # (benchmarks/step_memory.py); its accuracy against SAC, paired by seed (same out folder as
    # sac-bf16-synthetic, so the fp32 SAC runs are shared).
    'sac-low-memory-synthetic': dict(
        runs=[
            ('SAC', SYN.format('sac'), []),
            (
                'SAC-2views-per-term',
                SYN.format('sac'),
                ['model.terms.sac.views_per_pass=2', 'model.backward_groups=[[src],[sac]]'],
            ),
        ],
        baseline='SAC',
        out='work_dirs/bench_sac_bf16',
    ),
    # Weak supervision (issue 15): image labels only vs pixel labels, same network and budget.
    'cam-vs-supervised-camvid': dict(
        runs=[
            (
                'supervised',
                'configs/source-only/source-only_unet-resnet18_200_camvid-128x128.py',
                [],
            ),
            ('CAM', 'configs/cam/cam_unet-resnet18_200_camvid-128x128.py', []),
        ],
        baseline='supervised',
        scalars=['cam_mask.mask_images', 'cam_mask.pseudo_ratio'],
        camvid=True,
        out='work_dirs/bench_cam_camvid',
    ),
    'cam-vs-supervised-synthetic': dict(
        runs=[
            ('supervised', SYN.format('oracle'), []),
            ('CAM', 'configs/cam/cam_unet-resnet18_400_synthetic-96x192.py', []),
        ],
        baseline='supervised',
        scalars=['cam_mask.mask_images', 'cam_mask.pseudo_ratio'],
        out='work_dirs/bench_cam_synthetic',
    ),
    # UDA with and without image-level target labels (SAC vs SAC + target CAM + label filter).
    'weak-target-synthetic': dict(
        runs=[
            ('ABN', SYN.format('abn'), []),
            ('SAC', SYN.format('sac'), []),
            ('SAC+weak', 'configs/sac/sac-cam_unet-resnet18_400_synthetic-96x192.py', []),
            ('oracle', SYN.format('oracle'), []),
        ],
        default=['SAC', 'SAC+weak'],
        baseline='SAC',
        oracle='oracle',
        scalars=['tcam_mask.mask_images'],
        out='work_dirs/bench_weak_target',
    ),
    'weak-target-camvid': dict(
        runs=[
            ('ABN', CAMVID.format('abn/abn'), []),
            ('SAC', CAMVID.format('sac/sac'), []),
            ('SAC+weak', CAMVID.format('sac/sac-cam'), []),
            ('oracle', CAMVID.format('oracle/oracle'), []),
        ],
        default=['SAC', 'SAC+weak'],
        baseline='SAC',
        oracle='oracle',
        scalars=['tcam_mask.mask_images'],
        camvid=True,
        out='work_dirs/bench_weak_target_camvid',
    ),
    # Issue 21: every family warm-started from the converged baseline of the same seed
    # (benchmarks/converged.py makes it when missing: `{converged:ABN}` in an option is its
    # checkpoint), 1k more iterations for every run, the baseline included (ABN continued from
    # its own checkpoint: the same extra budget), teachers from iteration 0, fp32 (bf16 autocast
    # is 20x slower on a CPU without avx512_bf16: docs/speed_and_scale.md).
    'camvid-converged': dict(
        runs=[
            (name, config, [*WARM.format(base='ABN').split(), *(TEACHER0 if teacher else [])])
            for name, config, teacher in [
                ('ABN', CAMVID.format('abn/abn'), False),
                ('SAC', 'configs/sac/sac_unet-resnet18_1k_camvidday2dusk-128x128.py', True),
                ('DACS', CAMVID.format('dacs/dacs'), True),
                ('DACS+RCS', CAMVID.format('dacs/dacs-rcs'), True),
                ('MIC', CAMVID.format('mic/mic'), True),
                ('AdvEnt+MinEnt', CAMVID.format('advent/advent-minent'), False),
                ('weak/strong', CAMVID.format('weak_strong/weak-strong'), True),
                ('full pipeline', CAMVID.format('full_pipeline/full-pipeline'), True),
                ('SAC+weak', CAMVID.format('sac/sac-cam'), True),
            ]
        ],
        baseline='ABN',
        iters=1000,
        camvid=True,
        out='work_dirs/bench_camvid_converged',
    ),
    'semi-camvid-converged': dict(
        runs=[
            (
                f'{name}-{frac}',
                SEMI_CAMVID.format(method, frac),
                [*WARM.format(base=f'supervised-{frac}').split()]
                + (TEACHER0 if method == 'mean-teacher' else []),
            )
            for frac in ('1of8', '1of4')
            for name, method in SEMI_METHODS
        ],
        default=[f'{name}-1of8' for name, _ in SEMI_METHODS],
        baseline='supervised-1of8',
        iters=1000,
        camvid=True,
        out='work_dirs/bench_semi_camvid_converged',
    ),
}


class Job(NamedTuple):
    """One training run of the sweep."""

    name: str
    seed: int
    work_dir: str
    cmd: list[str]


def slug(name: str) -> str:
    """File-name form of a run name ('AdvEnt+MinEnt' -> 'advent-minent')."""
    return name.replace('+', '-').replace('/', '-').replace(' ', '-').lower()


def budget_options(config: str, iters: int) -> list[str]:
    """``--cfg-options`` that give ``config`` a budget of ``iters`` iterations.

    Loop length, one validation and checkpoint at the end, every scheduler's ``end`` (one
    optimiser or an optimiser dict) and a self-training start scaled by the same factor.
    """
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(ROOT, config))
    old = cfg.train_cfg.max_iters
    opts = [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
    ]
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
    # Terms' phases scale with the budget too (single-stage CAM's mask term starts after the
    # classification-only iterations).
    for name, term in (cfg.model.get('terms') or {}).items():
        for key in ('start_iter', 'end_iter'):
            if isinstance(term, dict) and term.get(key):
                opts.append(f'model.terms.{name}.{key}={round(term[key] * iters / old)}')
    return opts


def build_jobs(
    runs: Sequence[tuple[str, str, Sequence[str]]],
    seeds: Sequence[int],
    out: str,
    common: Sequence[str] = (),
    iters: Optional[int] = None,
) -> list[Job]:
    """The tools/train.py command of every (seed, run), seeds in the outer loop.

    Options are the ``--iters`` budget, then ``common`` (every run), then the run's own, so a
    run's option wins; ``{seed}`` and ``{out}`` in them are filled in.
    """
    budgets = {cfg: budget_options(cfg, iters) for _, cfg, _ in runs} if iters else {}
    jobs = []
    for seed in seeds:
        for name, config, opts in runs:
            work_dir = osp.join(out, f'{slug(name)}_seed{seed}')
            options = [
                o.format(seed=seed, out=out) for o in [*budgets.get(config, []), *common, *opts]
            ]
            cmd = [
                sys.executable,
                osp.join(ROOT, 'tools', 'train.py'),
                osp.join(ROOT, config),
                '--work-dir',
                work_dir,
                '--seed',
                str(seed),
            ]
            jobs.append(
                Job(name, seed, work_dir, cmd + (['--cfg-options', *options] if options else []))
            )
    return jobs


def run_job(job: Job) -> dict[str, Any]:
    """Train one run unless it finished before; its wall time and failure, if any."""
    done = osp.join(job.work_dir, 'sweep_run.json')
    metrics = osp.join(job.work_dir, 'metrics.json')
    if osp.isfile(done) and osp.isfile(metrics):
        with open(done) as f:
            return json.load(f)
    if osp.isfile(metrics):
        os.remove(metrics)  # from an interrupted run: never report an intermediate validation
    os.makedirs(job.work_dir, exist_ok=True)
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
    )
    log = job.work_dir + '.log'
    t0 = time.time()
    with open(log, 'w') as f:
        proc = subprocess.run(job.cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    result = dict(wall_s=time.time() - t0, failed=None)
    if proc.returncode != 0 or not osp.isfile(metrics):
        result['failed'] = f'exit code {proc.returncode}, see {log}'
        return result
    with open(done, 'w') as f:
        json.dump(result, f)
    return result


def last_quarter_scalars(work_dir: str, prefixes: Sequence[str]) -> dict[str, float]:
    """Mean over the last quarter of the logged training iterations of scalars by prefix;
    a prefix also matches after a term's name (``disc.acc``: ``ent.disc.acc_src``)."""
    rows = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            rows += [d for d in map(json.loads, f) if 'loss' in d]
    rows.sort(key=lambda d: d.get('iter', 0))
    tail = rows[-max(1, len(rows) // 4) :] if rows else []
    keys = sorted(
        {
            k
            for r in tail
            for k in r
            if k.startswith(tuple(prefixes)) or any(f'.{p}' in k for p in prefixes)
        }
    )
    return {k: statistics.mean(r[k] for r in tail if k in r) for k in keys}


def _fmt(values: Sequence[Optional[float]]) -> str:
    m, s, n = mean_std(values)
    if n == 0:
        return 'n/a'
    return f'{m:.2f} ± {s:.2f} (n={n})' if n > 1 else f'{m:.2f} (n=1)'


def miou_of(work_dir: str) -> Optional[float]:
    """The final validation's mIoU of a run, or None when it has no metrics.json."""
    path = osp.join(work_dir, 'metrics.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)['mIoU']


def domain_mious_of(work_dir: str) -> dict[str, Optional[float]]:
    """``{domain: mIoU}`` of a run validated on several domains (uda/evaluation/domains.py),
    ``{}`` for a single-dataset run or one without metrics.json."""
    path = osp.join(work_dir, 'metrics.json')
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        domains = json.load(f).get('domains') or {}
    return {d: rep.get('mIoU') for d, rep in domains.items()}


def summarize(
    jobs: Sequence[Job],
    results: dict[tuple[str, int], dict],
    seeds: Sequence[int],
    baseline: Optional[str] = None,
    oracle: Optional[str] = None,
    scalars: Sequence[str] = (),
) -> tuple[str, dict[str, Any]]:
    """Markdown table and summary dict over the runs' metrics.json files.

    Deltas are paired by seed (``run - baseline`` of the same seed), so seed-to-seed variance
    shared by both runs cancels; seeds where either run has no mIoU are left out (the ``n``).
    """
    names = list(dict.fromkeys(j.name for j in jobs))
    by_key = {(j.name, j.seed): j for j in jobs}
    miou = {(n, s): miou_of(by_key[(n, s)].work_dir) for n in names for s in seeds}
    head = ['run', 'target mIoU', f'per seed ({", ".join(map(str, seeds))})']
    # Runs validated on several domains: one more column per domain, '<domain>/mIoU'; the
    # 'target mIoU' column is the first (primary) domain's.
    per_domain = {(n, s): domain_mious_of(by_key[(n, s)].work_dir) for n in names for s in seeds}
    domains = list(dict.fromkeys(d for v in per_domain.values() for d in v))
    head += [f'{d}/mIoU' for d in domains]
    if baseline:
        head.append(f'Δ vs {baseline} (paired)')
    if baseline and oracle:
        head.append(f'share of {baseline} -> {oracle} gap closed')
    if scalars:
        head.append('last-quarter ' + ', '.join(scalars))
    head.append('wall / run')
    lines = ['| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * (len(head) - 1)]
    summary: dict[str, Any] = {}
    for name in names:
        vals = [miou[(name, s)] for s in seeds]
        m, sd, n = mean_std(vals)
        entry: dict[str, Any] = dict(mIoU=dict(mean=m, std=sd, n=n), per_seed=vals)
        cells = [name, _fmt(vals), ' / '.join('n/a' if v is None else f'{v:.2f}' for v in vals)]
        if domains:
            entry['domains'] = {}
        for d in domains:
            dvals = [per_domain[(name, s)].get(d) for s in seeds]
            entry['domains'][d] = dict(zip(('mean', 'std', 'n'), mean_std(dvals)), per_seed=dvals)
            cells.append(_fmt(dvals))
        if baseline:
            delta = [
                None if v is None or miou[(baseline, s)] is None else v - miou[(baseline, s)]
                for v, s in zip(vals, seeds)
            ]
            entry['delta'] = dict(zip(('mean', 'std', 'n'), mean_std(delta)))
            cells.append('—' if name == baseline else _fmt(delta))
        if baseline and oracle:
            share = []
            for v, s in zip(vals, seeds):
                a, o = miou[(baseline, s)], miou[(oracle, s)]
                share.append(None if None in (v, a, o) or o == a else 100 * (v - a) / (o - a))
            entry['gap_closed_pct'] = dict(zip(('mean', 'std', 'n'), mean_std(share)))
            cells.append('—' if name in (baseline, oracle) else _fmt(share).replace(' (', ' % ('))
        if scalars:
            per_key: dict[str, list[float]] = {}
            for s in seeds:
                for k, v in last_quarter_scalars(by_key[(name, s)].work_dir, scalars).items():
                    per_key.setdefault(k, []).append(v)
            entry['scalars'] = {k: statistics.mean(v) for k, v in per_key.items()}
            cells.append(', '.join(f'{k} {v:.2f}' for k, v in entry['scalars'].items()) or '—')
        walls = [results[(name, s)]['wall_s'] for s in seeds if (name, s) in results]
        cells.append(f'{statistics.mean(walls):.0f} s' if walls else 'n/a')
        failed = [
            results[(name, s)]['failed']
            for s in seeds
            if (name, s) in results and results[(name, s)].get('failed')
        ]
        if failed:
            cells[-1] += f' ({len(failed)} failed: {failed[0]})'
        entry['failed'] = failed
        summary[name] = entry
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n', summary


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='presets: ' + ', '.join(PRESETS),
    )
    p.add_argument('--preset', choices=sorted(PRESETS), help='a named list of runs (listed below)')
    p.add_argument('--only', nargs='+', help="preset runs to do (default: the preset's default)")
    p.add_argument(
        '--run',
        nargs='+',
        action='append',
        default=[],
        metavar=('NAME', 'CONFIG [KEY=VALUE]'),
        help='a run: name, config, its own --cfg-options (repeatable)',
    )
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='training seeds per run')
    p.add_argument('--jobs', type=int, default=1, help='runs in parallel (1 thread each)')
    p.add_argument('--out', help="output folder (default: the preset's, else work_dirs/sweep)")
    p.add_argument('--baseline', help='run name the deltas are paired against')
    p.add_argument('--oracle', help='run name of the upper bound (share of the gap closed)')
    p.add_argument('--scalars', nargs='*', help='logged scalar prefixes to report, e.g. disc.acc')
    p.add_argument(
        '--iters',
        type=int,
        help='budget of every run; schedules and a self-training start are scaled',
    )
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every run')
    p.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    p.add_argument(
        '--pretrained',
        metavar='PRETRAIN_CONFIG',
        help='make (or reuse) the encoder of this configs/pretrain config first '
        '(benchmarks/pretrained_encoder.py, seed 0) and fill {encoder} in the options',
    )
    return p.parse_args(argv)


def resolve(args: argparse.Namespace) -> tuple[list[tuple[str, str, list[str]]], dict]:
    """The runs and the preset settings (baseline, oracle, scalars, out) of the arguments."""
    preset = dict(PRESETS[args.preset]) if args.preset else {}
    runs = [(n, c, list(o)) for n, c, o in preset.get('runs', [])]
    wanted = args.only or preset.get('default') or [n for n, _, _ in runs]
    unknown = sorted(set(wanted) - {n for n, _, _ in runs})
    if unknown:
        raise SystemExit(
            f'--preset {args.preset} has no runs {unknown}; it has {[n for n, _, _ in runs]}.'
        )
    runs = [r for r in runs if r[0] in wanted]
    for spec in args.run:
        if len(spec) < 2:
            raise SystemExit(f'--run {" ".join(spec)}: give NAME CONFIG [KEY=VALUE ...].')
        runs.append((spec[0], spec[1], spec[2:]))
    if not runs:
        raise SystemExit('Nothing to run: give --preset or --run NAME CONFIG.')
    names = [n for n, _, _ in runs]
    for n, c, _ in runs:
        if not osp.isfile(osp.join(ROOT, c)):
            raise SystemExit(f'Run {n}: config {c} not found (paths are relative to {ROOT}).')
    settings = dict(
        baseline=args.baseline or preset.get('baseline'),
        oracle=args.oracle or preset.get('oracle'),
        scalars=args.scalars if args.scalars is not None else preset.get('scalars', []),
        out=args.out or preset.get('out', 'work_dirs/sweep'),
        iters=args.iters or preset.get('iters'),
    )
    for key in ('baseline', 'oracle'):
        if getattr(args, key) and getattr(args, key) not in names:
            raise SystemExit(f'--{key} {getattr(args, key)} is not one of the runs {names}.')
        if settings[key] not in names:  # the preset's, left out by --only
            settings[key] = None
    if preset.get('camvid'):
        root = os.environ.get('CAMVID_ROOT', osp.join(ROOT, 'data', 'camvid'))
        if not osp.isdir(root) and not args.dry_run:
            raise SystemExit(
                f'CamVid not found at {root}: set CAMVID_ROOT to the folder '
                'holding train/, trainannot/, test/ ... (docs/datasets.md).'
            )
    return runs, settings


def with_encoder(
    runs: list[tuple[str, str, list[str]]],
    common: list[str],
    pretrain_config: str,
    dry_run: bool = False,
) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """The runs and common options with ``{encoder}`` replaced by the pretrained encoder's
    path (benchmarks/pretrained_encoder.py: pretrained now when not cached, unless dry_run)."""
    from benchmarks.pretrained_encoder import cache_dir, ensure_encoder

    if dry_run:
        encoder = osp.join(cache_dir(pretrain_config), 'encoder.pth')
    else:
        encoder = ensure_encoder(pretrain_config, log=lambda m: print(m, flush=True))

    def fill(opts: Sequence[str]) -> list[str]:
        return [o.replace('{encoder}', encoder) for o in opts]

    return [(n, c, fill(o)) for n, c, o in runs], fill(common)


CONVERGED = re.compile(r'\{converged:([^}]+)\}')


def with_converged(
    runs: list[tuple[str, str, list[str]]],
    seeds: Sequence[int],
    jobs: int = 1,
    dry_run: bool = False,
) -> list[tuple[str, str, list[str]]]:
    """The runs with ``{converged:NAME}`` replaced by the checkpoint of benchmarks/converged.py's
    baseline NAME of the run's seed (``{seed}`` in the path), made first for every seed when
    not cached (unless dry_run)."""
    from benchmarks import converged

    names = sorted({m for _, _, opts in runs for o in opts for m in CONVERGED.findall(o)})
    unknown = [n for n in names if n not in converged.RUNS]
    if unknown:
        raise SystemExit(
            f'{{converged:{unknown[0]}}}: no such baseline; use {sorted(converged.RUNS)}.'
        )
    paths = {}
    for name in names:
        if dry_run:
            ckpt = 'iter_N.pth'
        else:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                done = list(
                    pool.map(lambda s, n=name: converged.ensure(n, s, converged.RUNS[n]), seeds)
                )
            failed = [d['failed'] for d in done if d.get('failed')]
            if failed:
                raise SystemExit(f'converged baseline {name}: {failed[0]}')
            ckpt = osp.basename(done[0]['checkpoint'])
        paths[name] = osp.join(converged.work_dir(name, 0).replace('_seed0', '_seed{seed}'), ckpt)
    return [
        (n, c, [CONVERGED.sub(lambda m: paths[m.group(1)], o) for o in opts]) for n, c, opts in runs
    ]


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    runs, st = resolve(args)
    if args.pretrained:
        runs, args.cfg_options = with_encoder(runs, args.cfg_options, args.pretrained, args.dry_run)
    runs = with_converged(runs, args.seeds, args.jobs, args.dry_run)
    jobs = build_jobs(runs, args.seeds, st['out'], args.cfg_options, st['iters'])
    if args.dry_run:
        for j in jobs:
            print(' '.join(j.cmd))
        return {}
    os.makedirs(st['out'], exist_ok=True)
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {(j.name, j.seed): pool.submit(run_job, j) for j in jobs}
        for j in jobs:  # report in submission order
            r = futures[(j.name, j.seed)].result()
            miou = miou_of(j.work_dir)
            print(
                f'{j.name} seed {j.seed}: mIoU {"n/a" if miou is None else f"{miou:.2f}"} '
                f'({r["wall_s"]:.0f} s)' + (f' FAILED: {r["failed"]}' if r['failed'] else ''),
                flush=True,
            )
    results = {k: f.result() for k, f in futures.items()}
    table, summary = summarize(
        jobs, results, args.seeds, st['baseline'], st['oracle'], st['scalars']
    )
    head = (
        f'{args.preset or "sweep"}: seeds {args.seeds}, {args.jobs} parallel job(s), '
        f'total {(time.time() - t0) / 60:.1f} min; mean ± sample std (n) in mIoU points'
    )
    print(f'\n{head}\n\n{table}')
    with open(osp.join(st['out'], 'summary.md'), 'w') as f:
        f.write(f'{head}\n\n{table}')
    with open(osp.join(st['out'], 'summary.json'), 'w') as f:
        json.dump(_nan_to_none(dict(seeds=args.seeds, runs=summary)), f, indent=2)
    for name in summary:  # per-class tables over the seeds that produced metrics
        dirs = [j.work_dir for j in jobs if j.name == name and miou_of(j.work_dir) is not None]
        if dirs:
            with open(osp.join(st['out'], f'{slug(name)}.md'), 'w') as f:
                f.write(seed_report(dirs, name)[0])
    pictures = draw(jobs, args.seeds, st['out'], st['baseline'])
    if pictures:
        print('pictures: ' + ', '.join(pictures))
    return summary


def draw(jobs: Sequence[Job], seeds: Sequence[int], out: str, baseline: Optional[str]) -> list[str]:
    """``OUT/curves.png`` (validation mIoU against the iteration, mean ± std band per run
    name) and, with a baseline, ``OUT/delta_per_class.png`` (per-class IoU change paired by
    seed, over the seeds where both runs have metrics); both also in ``OUT/tensorboard``."""
    names = list(dict.fromkeys(j.name for j in jobs))
    dirs = {(j.name, j.seed): j.work_dir for j in jobs}
    groups = {n: [dirs[(n, s)] for s in seeds] for n in names}
    pictures = [plot_curves(groups, osp.join(out, 'curves.png'))]
    if baseline:
        pairs: dict[str, tuple[list[str], list[str]]] = {}
        for n in names:
            if n == baseline:
                continue
            both = [
                s
                for s in seeds
                if miou_of(dirs[(n, s)]) is not None and miou_of(dirs[(baseline, s)]) is not None
            ]
            if both:
                pairs[n] = ([dirs[(n, s)] for s in both], [dirs[(baseline, s)] for s in both])
        for n, (runs, bases) in pairs.items():
            pictures.append(
                plot_class_deltas({n: runs}, bases, osp.join(out, f'delta_{slug(n)}.png'), baseline)
            )
    drawn = [p for p in pictures if p]
    if drawn:
        add_images_to_tensorboard(drawn, osp.join(out, 'tensorboard'))
    return drawn


def _nan_to_none(v: Any) -> Any:
    """JSON has no NaN: undefined statistics (std of one run) become null."""
    if isinstance(v, dict):
        return {k: _nan_to_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_nan_to_none(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


if __name__ == '__main__':
    main()
