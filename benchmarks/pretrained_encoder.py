"""The pretrained encoder of a pretraining config, from the cache or made now; prints its path.

One command gives the benchmarks a network that has learnt something (issue 12, item 6):

    python benchmarks/pretrained_encoder.py            # MoCo v2 on CamVid day + dusk, seed 0
    python benchmarks/pretrained_encoder.py \
        configs/pretrain/dino_unet-resnet18_300_synthetic-96x192.py --seed 1
    ENCODER=$(python benchmarks/pretrained_encoder.py | tail -n 1)

The cache is ``work_dirs/pretrained/<config name>_seed<k>[_<options hash>]/encoder.pth`` (never
committed). A cached file is used when its ``meta`` matches the request (layout, config name,
seed, iterations); otherwise ``tools/pretrain.py`` runs (one CPU thread, log in the cache
folder's ``pretrain.log``), resuming from its last checkpoint when an earlier run was
interrupted. Progress goes to stderr, the path alone to stdout.
``benchmarks/sweep.py --pretrained CONFIG`` calls :func:`ensure_encoder` before its runs and
fills ``{encoder}`` in their options.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import os.path as osp
import subprocess
import sys
from typing import Callable, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = 'configs/pretrain/mocov2_unet-resnet18_300_camvid-day+dusk-128x128.py'
CACHE = osp.join('work_dirs', 'pretrained')


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cache_dir(config: str, seed: int = 0, options: Sequence[str] = ()) -> str:
    """Folder of the cached run of ``config`` with ``seed`` and ``--cfg-options`` ``options``."""
    name = f'{osp.splitext(osp.basename(config))[0]}_seed{seed}'
    if options:
        name += '_' + hashlib.sha1(' '.join(options).encode()).hexdigest()[:8]
    return osp.join(ROOT, CACHE, name)


def expected_iterations(config: str, options: Sequence[str] = ()) -> int:
    """``train_cfg.max_iters`` of the config after ``options``."""
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(osp.join(ROOT, config))
    if options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction, default={}, help='config options')
        cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
    return int(cfg.train_cfg.max_iters)


def stale_reason(path: str, config: str, seed: int, iterations: int) -> Optional[str]:
    """Why the file at ``path`` is not the requested encoder, or None when it is."""
    if not osp.isfile(path):
        return 'no cached encoder'
    import torch

    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # a foreign or corrupt file: make it again
        return f'unreadable ({type(err).__name__}: {err})'
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not isinstance(ckpt.get('state_dict'), dict):
        return "not the {'state_dict', 'meta'} layout of tools/pretrain.py"
    want = dict(
        layout='uda',
        config=osp.basename(config),
        seed=seed,
        iterations=iterations,
    )
    have = dict(meta, config=osp.basename(str(meta.get('config'))))
    diff = [f'{k}={have.get(k)!r} (want {v!r})' for k, v in want.items() if have.get(k) != v]
    return f'cached encoder has {", ".join(diff)}' if diff else None


def pretrain_command(
    config: str, work_dir: str, seed: int, options: Sequence[str], resume: bool
) -> list[str]:
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'pretrain.py'),
        osp.join(ROOT, config),
        '--work-dir',
        work_dir,
        '--seed',
        str(seed),
    ]
    if resume:
        cmd.append('--resume')
    return cmd + (['--cfg-options', *options] if options else [])


def ensure_encoder(
    config: str = DEFAULT_CONFIG,
    seed: int = 0,
    options: Sequence[str] = (),
    force: bool = False,
    log: Callable[[str], None] = _err,
) -> str:
    """Path of the encoder of ``config`` (pretrained now unless cached); raises on failure."""
    if not osp.isfile(osp.join(ROOT, config)):
        raise SystemExit(f'Pretraining config {config} not found (paths are relative to {ROOT}).')
    if 'camvid' in osp.basename(config):
        root = os.environ.get('CAMVID_ROOT', osp.join(ROOT, 'data', 'camvid'))
        if not osp.isdir(root):
            raise SystemExit(
                f'CamVid not found at {root}: set CAMVID_ROOT to the folder holding train/, '
                'trainannot/, test/ ... (docs/datasets.md).'
            )
    work_dir = cache_dir(config, seed, options)
    path = osp.join(work_dir, 'encoder.pth')
    reason = stale_reason(path, config, seed, expected_iterations(config, options))
    if reason is None and not force:
        log(f'cached: {path}')
        return path
    os.makedirs(work_dir, exist_ok=True)
    if osp.isfile(path):
        os.remove(path)  # a stale encoder must not survive a failed run
    resume = not force and osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    cmd = pretrain_command(config, work_dir, seed, options, resume)
    log_file = osp.join(work_dir, 'pretrain.log')
    log(
        f'{reason if not force else "--force"}: pretraining ({"resumed, " if resume else ""}'
        f'log {log_file})\n  {" ".join(cmd)}'
    )
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
    )
    with open(log_file, 'a') as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    reason = stale_reason(path, config, seed, expected_iterations(config, options))
    if proc.returncode != 0 or reason is not None:
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-15:])
        raise SystemExit(
            f'Pretraining failed (exit code {proc.returncode}; {reason or "encoder written"}). '
            f'Last lines of {log_file}:\n{tail}'
        )
    return path


def main(argv: Optional[Sequence[str]] = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='a configs/pretrain config')
    p.add_argument('--seed', type=int, default=0, help='pretraining seed')
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to tools/pretrain.py')
    p.add_argument('--force', action='store_true', help='pretrain again even if cached')
    p.add_argument('--dry-run', action='store_true', help='print the cache path and command')
    args = p.parse_args(argv)
    if args.dry_run:
        work_dir = cache_dir(args.config, args.seed, args.cfg_options)
        print(' '.join(pretrain_command(args.config, work_dir, args.seed, args.cfg_options, False)))
        path = osp.join(work_dir, 'encoder.pth')
    else:
        path = ensure_encoder(args.config, args.seed, args.cfg_options, args.force)
    print(path)
    return path


if __name__ == '__main__':
    main()
