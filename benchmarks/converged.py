"""Converged CamVid baselines per seed: trained (or resumed) when missing, scored, cached.

The adaptation and semi-supervised methods warm-start from a baseline that has learned what it
can (issue 21), as the papers do (visinf/da-sac: ABN to convergence, then SAC). One command
makes, or reuses, those baselines and reports them:

    python benchmarks/converged.py                        # ABN + oracle, seeds 0 1 2, 2 jobs
    python benchmarks/converged.py --only supervised-1of8 supervised-1of4 --seeds 0
    CKPT=$(python benchmarks/converged.py --checkpoint ABN --seeds 1 | tail -n 1)

Each run is ``tools/train.py CONFIG --work-dir work_dirs/converged/<name>_seed<k> --seed k``
(one torch thread; the configs validate on CamVid's *val* split every 250 iterations, so the
learning curve never sees the reported frames), resumed from its ``last_checkpoint`` when an
earlier run was interrupted. When training has finished, ``tools/test.py`` scores the final
checkpoint once on the test frames (``<work dir>/test/metrics.json``), and
``<work dir>/converged.json`` records the checkpoint, the wall time and both scores: a run with
that file is reused. The report (``work_dirs/converged/summary.md``) gives the test mIoU over the
seeds with the paired delta to ABN and the ABN -> oracle gap, ``curves.png`` the validation
curves (mean ± std band), ``delta_<run>.png`` the per-class paired deltas.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.sweep import Job, slug, summarize  # noqa: E402
from uda.evaluation.seed_plots import (  # noqa: E402
    add_images_to_tensorboard,
    plot_class_deltas,
    plot_curves,
    read_curve,
)

CACHE = osp.join('work_dirs', 'converged')
# name -> config: the converged budget of each baseline (3k iterations, fp32).
RUNS = {
    'ABN': 'configs/abn/abn_unet-resnet18_3k_camvidday2dusk-128x128.py',
    'oracle': 'configs/oracle/oracle_unet-resnet18_3k_camvidday2dusk-128x128.py',
    # The oracle's schedule check: 50 dusk train frames, validated on the other 12 (CamVid's
    # val split is day only); not a reported baseline.
    'oracle-holdout': (
        'configs/oracle/oracle_unet-resnet18_3k_camvidday2dusk-duskholdout-128x128.py'
    ),
    'supervised-1of8': 'configs/semi/supervised_unet-resnet18_3k_camvid-1of8-128x128.py',
    'supervised-1of4': 'configs/semi/supervised_unet-resnet18_3k_camvid-1of4-128x128.py',
}
DEFAULT = ['ABN', 'oracle']


def work_dir(name: str, seed: int, cache: str = CACHE) -> str:
    return osp.join(ROOT, cache, f'{slug(name)}_seed{seed}')


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
    )


def final_checkpoint(wd: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` names, if training reached ``max_iters``."""
    from mmengine.config import Config

    marker = osp.join(wd, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    if not osp.isabs(path):
        path = osp.join(ROOT, path)
    cfg_files = [f for f in os.listdir(wd) if f.endswith('.py')]
    if not osp.isfile(path) or not cfg_files:
        return None
    max_iters = Config.fromfile(osp.join(wd, cfg_files[0])).train_cfg.max_iters
    return path if osp.basename(path) == f'iter_{max_iters}.pth' else None


def ensure(name: str, seed: int, config: str, cache: str = CACHE) -> dict[str, Any]:
    """Train (or resume) and score one baseline unless ``converged.json`` says it is done."""
    wd = work_dir(name, seed, cache)
    done = osp.join(wd, 'converged.json')
    if osp.isfile(done):
        with open(done) as f:
            return json.load(f)
    os.makedirs(wd, exist_ok=True)
    t0 = time.time()
    if final_checkpoint(wd) is None:
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, config)]
        cmd += ['--work-dir', wd, '--seed', str(seed)]
        if osp.isfile(osp.join(wd, 'last_checkpoint')):
            cmd.append('--resume')  # an interrupted run goes on from its newest checkpoint
        with open(wd + '.log', 'a') as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
        if proc.returncode != 0 or final_checkpoint(wd) is None:
            return dict(failed=f'training exit code {proc.returncode}, see {wd}.log')
    ckpt = final_checkpoint(wd)
    assert ckpt is not None
    test_dir = osp.join(wd, 'test')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'test.py'), osp.join(ROOT, config), ckpt]
    cmd += ['--work-dir', test_dir, '--max-pred-images', '8']
    with open(wd + '.test.log', 'w') as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=_env())
    if proc.returncode != 0:
        return dict(failed=f'test exit code {proc.returncode}, see {wd}.test.log')
    with open(osp.join(test_dir, 'metrics.json')) as f:
        test_miou = json.load(f)['mIoU']
    curve = read_curve(wd)
    result = dict(
        checkpoint=ckpt,
        config=config,
        seed=seed,
        test_mIoU=test_miou,
        val_curve=curve,
        wall_s=time.time() - t0,  # this call only: a resumed run adds its earlier starts' time
        failed=None,
    )
    with open(done, 'w') as f:
        json.dump(result, f, indent=2)
    return result


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--only', nargs='+', choices=sorted(RUNS), help=f'runs (default {DEFAULT})')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='training seeds')
    p.add_argument('--jobs', type=int, default=2, help='runs in parallel (1 thread each)')
    p.add_argument('--out', default=CACHE, help='cache and report folder')
    p.add_argument(
        '--checkpoint',
        choices=sorted(RUNS),
        help='make this baseline for --seeds if missing and print its checkpoint path last',
    )
    return p.parse_args(argv)


def report(names: Sequence[str], seeds: Sequence[int], out: str) -> str:
    """Markdown of the test mIoU over seeds (delta paired to ABN, gap to the oracle) + PNGs."""
    jobs = [Job(n, s, osp.join(work_dir(n, s, out), 'test'), []) for s in seeds for n in names]
    results = {}
    for n in names:
        for s in seeds:
            done = osp.join(work_dir(n, s, out), 'converged.json')
            if osp.isfile(done):
                with open(done) as f:
                    results[(n, s)] = json.load(f)
    baseline = 'ABN' if 'ABN' in names else None
    oracle = 'oracle' if baseline and 'oracle' in names else None
    table, _ = summarize(jobs, results, seeds, baseline, oracle)
    groups = {n: [work_dir(n, s, out) for s in seeds] for n in names}
    pictures = [plot_curves(groups, osp.join(ROOT, out, 'curves.png'), title='CamVid val mIoU')]
    if baseline:
        for n in names:
            both = [s for s in seeds if (n, s) in results and (baseline, s) in results]
            if n != baseline and both:
                pictures.append(
                    plot_class_deltas(
                        {n: [osp.join(work_dir(n, s, out), 'test') for s in both]},
                        [osp.join(work_dir(baseline, s, out), 'test') for s in both],
                        osp.join(ROOT, out, f'delta_{slug(n)}.png'),
                        baseline,
                    )
                )
    drawn = [p for p in pictures if p]
    if drawn:
        add_images_to_tensorboard(drawn, osp.join(ROOT, out, 'tensorboard'))
    head = f'Converged baselines, seeds {list(seeds)}: test mIoU, mean ± sample std (n)'
    text = f'{head}\n\n{table}' + ''.join(
        f'\n![{osp.basename(p)}]({osp.basename(p)})' for p in drawn
    )
    with open(osp.join(ROOT, out, 'summary.md'), 'w') as f:
        f.write(text + '\n')
    return text


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    root = os.environ.get('CAMVID_ROOT', osp.join(ROOT, 'data', 'camvid'))
    if not osp.isdir(root):
        raise SystemExit(
            f'CamVid not found at {root}: set CAMVID_ROOT to the folder holding train/, '
            'trainannot/, val/, test/ ... (docs/datasets.md).'
        )
    names = [args.checkpoint] if args.checkpoint else (args.only or DEFAULT)
    tasks = [(n, s) for s in args.seeds for n in names]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {t: pool.submit(ensure, t[0], t[1], RUNS[t[0]], args.out) for t in tasks}
        for (n, s), fut in futures.items():
            r = fut.result()
            state = (
                f'FAILED: {r["failed"]}' if r.get('failed') else f'test mIoU {r["test_mIoU"]:.2f}'
            )
            print(f'{n} seed {s}: {state}', file=sys.stderr, flush=True)
    if args.checkpoint:
        for n, s in tasks:
            print(futures[(n, s)].result().get('checkpoint') or '')
        return
    print(report(names, args.seeds, args.out))


if __name__ == '__main__':
    main()
