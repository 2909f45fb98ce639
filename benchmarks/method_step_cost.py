"""Step time and peak memory of each method's training step, from its config, against SAC's.

Each run is a fresh subprocess that builds the config's Runner (its network, data, terms,
optimisers and hooks, exactly as ``tools/train.py``), switches every term on from the first
iteration (the teacher, and the terms that start with it, at iteration 0; no validation, no
checkpoints) and trains ``--warmup + --steps`` iterations. A hook brackets each iteration's
``train_step`` and the hooks after it (the teacher's EMA update included), without the data
loading; the figures are the median step time and the peak memory above the memory held
before the measured steps (CUDA: max allocated; CPU: resident set size sampled every 2 ms,
with glibc returning large blocks at once so that RSS follows the live tensors). With
``--groups`` each run is measured a second time with one backward pass per term
(``model.backward_groups``: one graph alive at a time).

    OMP_NUM_THREADS=1 python benchmarks/method_step_cost.py \\
        --run ABN configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py \\
        --run SAC configs/demo/sac_unet-resnet18_400it_synthetic-96x192.py \\
        --run DACS configs/dacs/dacs_unet-resnet18_400it_synthetic-96x192.py --reference SAC
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure(config: str, options: list[str], args: argparse.Namespace, groups: bool) -> dict:
    """Build the config's Runner in this process, train, return step seconds and peak MiB."""
    from mmengine.config import Config, DictAction
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from uda.registry import HOOKS

    cuda = args.device.startswith('cuda')
    times: list[float] = []
    peaks: list[float] = []

    class StepCostHook(Hook):
        """Time and memory of the measured iterations (after ``warmup``)."""

        priority = 'LOWEST'  # after_train_iter: after the teacher update and the loggers

        def __init__(self) -> None:
            self.stop = threading.Event()
            self.peak = 0.0

        def _poll(self) -> None:
            while not self.stop.is_set():
                self.peak = max(self.peak, _rss_mib())
                time.sleep(0.002)

        def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
            self.measured = runner.iter >= args.warmup
            if not self.measured:
                return
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self.base = torch.cuda.memory_allocated() / 2**20
            else:
                self.base = self.peak = _rss_mib()
                self.stop.clear()
                self.thread = threading.Thread(target=self._poll, daemon=True)
                self.thread.start()
            self.t0 = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if not self.measured:
                return
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)
            if cuda:
                peaks.append(torch.cuda.max_memory_allocated() / 2**20 - self.base)
            else:
                self.stop.set()
                self.thread.join()
                peaks.append(self.peak - self.base)

    if 'StepCostHook' not in HOOKS.module_dict:
        HOOKS.register_module(module=StepCostHook)
    cfg = Config.fromfile(config)
    opts: dict = {}
    for item in options:
        key, value = item.split('=', 1)
        opts[key] = DictAction._parse_iter(value)
    cfg.merge_from_dict(opts)
    iters = args.warmup + args.steps
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    if cfg.model.get('teacher') is not None:
        cfg.model.teacher.start_iter = 0  # every teacher term on from the first step
    for term in cfg.model.terms.values():
        term.pop('start_iter', None)
    if groups:
        cfg.model.backward_groups = [[name] for name in cfg.model.terms]
    hooks = dict(cfg.default_hooks)
    hooks['checkpoint'] = dict(type='CheckpointHook', interval=10**9, save_last=False)
    hooks.pop('visualization', None)
    cfg.default_hooks = hooks
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='StepCostHook')]
    cfg.work_dir = tempfile.mkdtemp(prefix='step_cost_')
    cfg.log_level = 'WARNING'
    if not cuda:
        cfg.env_cfg = dict(cfg.env_cfg, dist_cfg=dict(backend='gloo'))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return dict(
        step_s=statistics.median(times),
        peak_mib=max(peaks),
        threads=torch.get_num_threads(),
        steps=len(times),
    )


def run_subprocess(config: str, options: list[str], args, groups: bool) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    cmd = [sys.executable, __file__, '--worker', config, *options]
    cmd += ['--steps', str(args.steps), '--warmup', str(args.warmup), '--device', args.device]
    cmd += ['--groups'] if groups else []
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f'{config}: the measuring process failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--run',
        nargs='+',
        action='append',
        metavar=('NAME', 'CONFIG'),
        help='NAME CONFIG [KEY=VALUE ...] (repeatable)',
    )
    parser.add_argument('--reference', default='SAC', help='run the ratios are against')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--groups', action='store_true', help='also with backward per term')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--worker', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        res = measure(args.worker[0], args.worker[1:], args, args.groups)
        print(json.dumps(res))
        return
    if not args.run:
        parser.error('give at least one --run NAME CONFIG')
    results: dict[str, dict] = {}
    for name, config, *options in args.run:
        results[name] = dict(one=run_subprocess(config, options, args, False))
        if args.groups:
            results[name]['groups'] = run_subprocess(config, options, args, True)
        print(f'{name}: {results[name]}', file=sys.stderr)
    ref = results.get(args.reference, {}).get('one')
    threads = next(iter(results.values()))['one']['threads']
    print(
        f'device {args.device}, {threads} thread(s), median of {args.steps} steps after '
        f'{args.warmup}; peak memory above the memory held between steps'
    )
    head = '| method | step s | x ' + args.reference + ' | peak MiB | x ' + args.reference
    head += ' | peak MiB, backward per term | x ' + args.reference + ' |' if args.groups else ' |'
    print(head)
    print('|---' * (7 if args.groups else 5) + '|')
    for name, res in results.items():
        one = res['one']
        row = f'| {name} | {one["step_s"]:.3f} | '
        row += f'{one["step_s"] / ref["step_s"]:.2f} | ' if ref else '– | '
        row += f'{one["peak_mib"]:.0f} | '
        row += f'{one["peak_mib"] / ref["peak_mib"]:.2f} |' if ref else '– |'
        if args.groups:
            grp = res['groups']
            row += f' {grp["peak_mib"]:.0f} | '
            row += f'{grp["peak_mib"] / ref["peak_mib"]:.2f} |' if ref else '– |'
        print(row)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
