"""Same numbers at two code revisions: does a refactor change what a config trains?

A sweep over seeds tells whether two code versions agree *within seed noise*; on this CPU a
run is deterministic for a given seed and thread count, so a stricter and far cheaper check
exists: train each config a short budget at git revision ``--rev`` and at the working tree, and
compare the logged total loss of every logged iteration, the final validation mIoU and every
weight of the final checkpoint. Identical numbers at a budget where every term has started
(``--iters`` scales the schedules and the self-training start as ``benchmarks/sweep.py``
does) mean the full-budget rows of the summary matrix reproduce exactly; a difference is
printed with the first iteration at which the loss parts.

Each side runs ``benchmarks/sweep.py`` of its own code (a detached ``git worktree`` of
``--rev`` next to ``--out``), one torch thread per run. A config renamed between the two
revisions is given twice: ``--run NAME CONFIG [REV_CONFIG] [KEY=VALUE ...]``.

    python benchmarks/same_numbers.py --rev 1663c26 --iters 40 --jobs 2 \\
        --run ABN configs/demo/abn_unet-resnet18_400_synthetic-96x192.py \\
                  configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_run(spec: Sequence[str]) -> tuple[str, str, str, list[str]]:
    """``NAME CONFIG [REV_CONFIG] [KEY=VALUE ...]`` -> (name, config, rev config, options)."""
    if len(spec) < 2 or not spec[1].endswith('.py'):
        raise SystemExit(f'--run {" ".join(spec)}: give NAME CONFIG [REV_CONFIG] [KEY=VALUE ...].')
    name, config, rest = spec[0], spec[1], list(spec[2:])
    rev_config = rest.pop(0) if rest and rest[0].endswith('.py') else config
    return name, config, rev_config, rest


def logged_losses(work_dir: str) -> dict[int, float]:
    """Total training loss by iteration from every ``vis_data/scalars.json`` of a run."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for row in map(json.loads, f):
                if 'loss' in row and 'iter' in row:
                    losses[int(row['iter'])] = float(row['loss'])
    return losses


def final_weights(work_dir: str) -> dict[str, Any]:
    """The ``state_dict`` of the checkpoint ``last_checkpoint`` names (empty if none)."""
    from uda.engine.checkpoint import load_checkpoint_file

    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return {}
    with open(marker) as f:
        path = f.read().strip()
    if not osp.isabs(path) or not osp.isfile(path):
        path = osp.join(work_dir, osp.basename(path))
    ckpt = load_checkpoint_file(path, map_location='cpu')
    return ckpt.get('state_dict', ckpt)


def compare(rev_dir: str, tree_dir: str) -> dict[str, Any]:
    """Loss, mIoU and weight differences of one run at the two revisions."""
    out: dict[str, Any] = {}
    a, b = logged_losses(rev_dir), logged_losses(tree_dir)
    common = sorted(set(a) & set(b))
    out['iters_compared'] = len(common)
    diffs = [(i, abs(a[i] - b[i])) for i in common]
    out['max_loss_diff'] = max((d for _, d in diffs), default=None)
    out['first_loss_diff_iter'] = next((i for i, d in diffs if d > 0), None)
    scores = []
    for wd in (rev_dir, tree_dir):
        path = osp.join(wd, 'metrics.json')
        scores.append(json.load(open(path)).get('mIoU') if osp.isfile(path) else None)
    out['mIoU_rev'], out['mIoU_tree'] = scores
    wa, wb = final_weights(rev_dir), final_weights(tree_dir)
    shared = [k for k in wa if k in wb and getattr(wa[k], 'shape', None) == wb[k].shape]
    out['weights_compared'] = len(shared)
    out['weights_only_in_one'] = sorted(set(wa) ^ set(wb))
    out['max_weight_diff'] = max(
        (float((wa[k].double() - wb[k].double()).abs().max()) for k in shared if wa[k].numel()),
        default=None,
    )
    out['identical'] = bool(
        common
        and out['max_loss_diff'] == 0
        and scores[0] is not None
        and scores[0] == scores[1]
        and shared
        and out['max_weight_diff'] == 0
    )
    return out


def sweep(root: str, runs: list[tuple[str, str, list[str]]], args: argparse.Namespace, out: str):
    """Run one side's own ``benchmarks/sweep.py`` over the runs (its code, its configs)."""
    cmd = [sys.executable, osp.join(root, 'benchmarks', 'sweep.py')]
    for name, config, opts in runs:
        cmd += ['--run', name, config, *opts]
    cmd += ['--iters', str(args.iters), '--seeds', str(args.seed), '--jobs', str(args.jobs)]
    cmd += ['--out', out, '--cfg-options', 'default_hooks.logger.interval=1']  # every loss
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'sweep at {root} failed:\n{proc.stderr[-2000:]}')


def worktree(rev: str, path: str) -> str:
    """A detached worktree of ``rev`` at ``path`` (reused when it already holds ``rev``)."""
    sha = subprocess.run(
        ['git', 'rev-parse', '--verify', f'{rev}^{{commit}}'],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if sha.returncode != 0:
        raise SystemExit(f'--rev {rev}: not a commit of {ROOT} ({sha.stderr.strip()}).')
    if osp.isdir(path):
        head = subprocess.run(
            ['git', 'rev-parse', 'HEAD'], cwd=path, capture_output=True, text=True
        ).stdout.strip()
        if head == sha.stdout.strip():
            return path
        raise SystemExit(f'{path} holds another revision ({head[:9]}); remove it or pick --out.')
    subprocess.run(['git', 'worktree', 'add', '--detach', path, rev], cwd=ROOT, check=True)
    return path


def table(rows: dict[str, dict[str, Any]], rev: str, iters: int) -> str:
    """The Markdown report."""
    lines = [
        f'Same numbers at `{rev}` and the working tree, {iters} iterations per run:',
        '',
        '| run | iterations compared | max loss diff (first iteration) | mIoU rev / tree '
        '| weights compared | max weight diff | identical |',
        '|---|---:|---:|---:|---:|---:|---|',
    ]
    for name, r in rows.items():
        loss = '—' if r['max_loss_diff'] is None else f'{r["max_loss_diff"]:.3g}'
        if r['first_loss_diff_iter']:
            loss += f' (it {r["first_loss_diff_iter"]})'
        renamed = len(r['weights_only_in_one'])
        weights = f'{r["weights_compared"]}' + (f' (+{renamed} renamed)' if renamed else '')
        wdiff = '—' if r['max_weight_diff'] is None else f'{r["max_weight_diff"]:.3g}'
        same = 'yes' if r['identical'] else '**no**'
        lines.append(
            f'| {name} | {r["iters_compared"]} | {loss} | {r["mIoU_rev"]} / {r["mIoU_tree"]} '
            f'| {weights} | {wdiff} | {same} |'
        )
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--rev', required=True, help='git revision to compare the working tree with')
    p.add_argument(
        '--run',
        nargs='+',
        action='append',
        required=True,
        metavar=('NAME', 'CONFIG [REV_CONFIG] [KEY=VALUE]'),
        help='a run: name, config, its path at --rev if renamed, options (repeatable)',
    )
    p.add_argument('--iters', type=int, default=40, help='budget of every run (sweep.py --iters)')
    p.add_argument('--seed', type=int, default=0, help='training seed of every run')
    p.add_argument('--jobs', type=int, default=1, help='runs in parallel per side (1 thread each)')
    p.add_argument('--out', default='work_dirs/same_numbers', help='output folder')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    runs = [parse_run(spec) for spec in args.run]
    out = osp.abspath(osp.join(ROOT, args.out))
    os.makedirs(out, exist_ok=True)
    rev_root = worktree(args.rev, osp.join(out, 'rev'))
    sweep(rev_root, [(n, rc, o) for n, _, rc, o in runs], args, osp.join(out, 'at_rev'))
    sweep(ROOT, [(n, c, o) for n, c, _, o in runs], args, osp.join(out, 'at_tree'))
    from benchmarks.sweep import slug  # the run folders' names

    rows = {
        n: compare(
            osp.join(out, 'at_rev', f'{slug(n)}_seed{args.seed}'),
            osp.join(out, 'at_tree', f'{slug(n)}_seed{args.seed}'),
        )
        for n, _, _, _ in runs
    }
    text = table(rows, args.rev, args.iters)
    with open(osp.join(out, 'summary.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(out, 'summary.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    print(text)
    return 0 if all(r['identical'] for r in rows.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
