"""Test-time adaptation on continual streams: source vs BN-adapt vs TENT vs CoTTA vs SAC-TTA.

Two streams, each adapted continually (no reset between conditions), 4 images per batch:

* ``synthetic``: built-in target scenes (uda/data/synthetic.py, 96x192) in four conditions one
  after the other: ``target`` (the captured look), ``dusk`` (x0.35 brightness, blue cast, sensor
  noise), ``fog`` (45 % image + 55 % grey-white haze) and ``noise`` (Gaussian, std 28 grey
  levels); the source model is trained on the rendered-look ``source`` scenes.
* ``camvid``: CamVid test day frames (Seq05VD, every 8th) then dusk frames (0001TP, every
  2nd), 180x240; the source model is trained on day frames
  (configs/source-only/source-only_unet-resnet18_200_camvidday2dusk-128x128.py).

Each on a BatchNorm encoder (UNet-ResNet-18) and a LayerNorm encoder (UNet-MiT-B0, smp
``mit_b0``; its U-Net decoder keeps BatchNorm). Source models are trained first when missing
(``OUT/source/<scenario>_<net>/``, seed 0, 200 iterations). Every (seed, scenario, net, method)
runs in its own process (one torch thread) so that its peak resident memory is its own; the
seed picks the stream's scenes (synthetic) or frame offset (CamVid) and the adaptation's random
draws. Reported per condition and as the mean over conditions: mIoU mean ± std over seeds, ms
per image (adapt + predict, the thread count beside it), peak RSS and its growth over the
loaded model (MiB), collapse resets.

    nice -n 10 python benchmarks/test_time.py --out work_dirs/test_time --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

PY = sys.executable
METHODS = {
    'source': 'source',
    'bn': 'bn-adapt',
    'bn0': 'bn-adapt',  # with prior_strength=0: test-batch statistics only (TENT's, CoTTA's)
    'tent': 'tent',
    'cotta': 'cotta',
    'sac': 'sac-tta',
}
LABELS = dict(METHODS, bn='BN-adapt (N=9)', bn0='BN-adapt (N=0)', sac='SAC-TTA')
NETS = {'resnet18': 'unet-resnet18', 'mit_b0': 'unet-mit-b0'}
SCENARIOS = {
    'synthetic': dict(
        leaf='configs/tta/{}_unet-resnet18_online_synthetic-96x192.py',
        train='configs/demo/source-only_unet-resnet18_400_synthetic-96x192.py',
        budget=[
            'train_cfg.max_iters=200',
            'train_cfg.val_interval=200',
            'default_hooks.checkpoint.interval=200',
            'param_scheduler.0.end=200',
        ],
        iters=200,
    ),
    'camvid': dict(
        leaf='configs/tta/{}_unet-resnet18_online_camvidday2dusk-128x128.py',
        train='configs/source-only/source-only_unet-resnet18_200_camvidday2dusk-128x128.py',
        budget=[],
        iters=200,
    ),
}
CONDITIONS = {'synthetic': ('target', 'dusk', 'fog', 'noise'), 'camvid': ('day', 'dusk')}


def source_dir(out: str, scenario: str, net: str) -> str:
    return osp.join(
        out, 'source', f'{"camvid-day" if scenario == "camvid" else scenario}_{NETS[net]}'
    )


def make_source(out: str, scenario: str, net: str) -> str:
    """Train the source model of (scenario, net) unless its checkpoint exists; its path."""
    spec = SCENARIOS[scenario]
    work = source_dir(out, scenario, net)
    ckpt = osp.join(work, f'iter_{spec["iters"]}.pth')
    if osp.isfile(osp.join(work, 'done')) and osp.isfile(ckpt):
        return ckpt
    opts = list(spec['budget'])
    if net != 'resnet18':
        opts.append(f'model.segmentor.encoder_name={net}')
    cmd = [PY, 'tools/train.py', spec['train'], '--work-dir', work, '--seed', '0']
    if opts:
        cmd += ['--cfg-options', *opts]
    print('source model:', ' '.join(cmd), flush=True)
    os.makedirs(work, exist_ok=True)
    with open(osp.join(work, 'train.out'), 'w') as log:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    open(osp.join(work, 'done'), 'w').close()
    return ckpt


# ---------------------------------------------------------------- streams


def _corrupt(img: Any, condition: str, rng: Any) -> Any:
    import numpy as np

    x = img.astype(np.float32)
    if condition == 'dusk':
        x = x * 0.35 * np.array([0.8, 0.9, 1.25], np.float32) + rng.normal(0, 4, x.shape)
    elif condition == 'fog':
        x = 0.45 * x + 0.55 * np.array([205, 208, 212], np.float32)
    elif condition == 'noise':
        x = x + rng.normal(0, 28, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def synthetic_stream(seed: int, per_condition: int) -> Iterator[tuple[str, dict]]:
    """Single samples (condition, {'inputs', 'data_samples'}) of the synthetic stream."""
    import numpy as np
    import torch

    from uda.data.synthetic import render_scene

    rng = np.random.default_rng(seed)
    for k, condition in enumerate(CONDITIONS['synthetic']):
        for i in range(per_condition):
            index = k * per_condition + i
            img, lbl = render_scene(index, 'target', 5000 + seed, (96, 192))
            img = _corrupt(img, condition, rng)
            yield (
                condition,
                dict(
                    inputs=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
                    data_samples=dict(
                        img_path=f'synthetic://{condition}/{seed}/{index}',
                        ori_shape=(96, 192),
                        img_shape=(96, 192),
                        gt_sem_seg=torch.from_numpy(lbl.astype(np.int64)),
                    ),
                ),
            )


def camvid_stream(seed: int, day: int, dusk: int) -> Iterator[tuple[str, dict]]:
    """CamVid test frames: ``day`` Seq05VD frames (every 8th), then ``dusk`` 0001TP frames
    (every 2nd), starting at frame ``seed`` of each sequence."""
    from uda.data.camvid import CamVidDataset

    root = os.environ.get('CAMVID_ROOT', osp.join(ROOT, 'data', 'camvid'))
    for condition, seq, step, count in (('day', 'Seq05VD', 8, day), ('dusk', '0001TP', 2, dusk)):
        ds = CamVidDataset(data_root=root, split='test', sequences=[seq], resize=(180, 240))
        for i in range(seed, min(len(ds), seed + step * count), step):
            yield condition, ds[i]


def batches(items: Iterator[tuple[str, dict]], size: int) -> Iterator[tuple[str, dict]]:
    """Batches of ``size`` samples of one condition (a condition's last batch may be short)."""
    cond, inputs, samples = None, [], []
    for c, item in items:
        if (c != cond and inputs) or len(inputs) == size:
            yield cond, dict(inputs=inputs, data_samples=samples)
            inputs, samples = [], []
        cond = c
        inputs.append(item['inputs'])
        samples.append(item['data_samples'])
    if inputs:
        yield cond, dict(inputs=inputs, data_samples=samples)


# ---------------------------------------------------------------- one run


def _rss_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def worker(job: dict) -> dict:
    """Adapt along one stream in this process; the run's record."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import uda.engine  # noqa: F401  (checkpoint loader, loops)
    from uda.engine.checkpoint import load_checkpoint_file, state_dict_of
    from uda.engine.test_time import TestTimeAdapter
    from uda.evaluation.iou_metric import confusion_matrix, iou_from_confusion
    from uda.registry import METRICS, MODELS

    torch.set_num_threads(1)
    torch.manual_seed(job['seed'])
    cfg = Config.fromfile(osp.join(ROOT, job['config']))
    if job['net'] != 'resnet18':
        cfg.merge_from_dict({'model.segmentor.encoder_name': job['net']})
    if job['method'] == 'bn0':
        cfg.merge_from_dict({'test_cfg.norm.prior_strength': 0})
    if job.get('cotta_scales') and 'cotta' in (cfg.model.get('labellers') or {}):
        cfg.merge_from_dict({'model.labellers.cotta.scales': tuple(job['cotta_scales'])})
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(cfg.model.to_dict())
        metric = METRICS.build(cfg.test_evaluator.to_dict())
    weights = state_dict_of(load_checkpoint_file(job['checkpoint'], 'cpu'))
    student = {k: v for k, v in weights.items() if k.startswith('student.')}
    missing, _ = model.load_state_dict(student, strict=False)
    lost = [k for k in missing if k.startswith('student.')]
    if lost:
        raise KeyError(f'{job["checkpoint"]} lacks student weights {lost[:3]}')
    loop = {k: v for k, v in cfg.test_cfg.to_dict().items() if k != 'type'}
    optim = loop.pop('optim_wrapper', None)
    tta = TestTimeAdapter(model, optim, **loop)
    tta.start()
    rss_loaded = _rss_mib()
    if job['scenario'] == 'synthetic':
        items = synthetic_stream(job['seed'], job['per_condition'])
    else:
        items = camvid_stream(job['seed'], job['day'], job['dusk'])
    conf: dict[str, Any] = {}
    t0 = time.perf_counter()
    for condition, batch in batches(items, job['batch']):
        for out in tta.step(batch):
            c = confusion_matrix(
                out['pred_sem_seg'].reshape(-1),
                out['gt_sem_seg'].reshape(-1),
                metric.num_classes,
                metric.ignore_index,
            ).numpy()
            conf[condition] = conf.get(condition, 0) + c
    wall = time.perf_counter() - t0
    miou = {c: 100 * float(iou_from_confusion(m, metric.eval_ids)['miou']) for c, m in conf.items()}
    summary = tta.summary()
    return dict(
        job=job,
        mIoU=miou,
        mean_mIoU=float(np.mean(list(miou.values()))),
        ms_per_image=summary['ms_per_image'],
        threads=summary['threads'],
        images=summary['images'],
        resets=len(summary['resets']),
        rss_loaded_mib=round(rss_loaded, 1),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        wall_s=round(wall, 1),
    )


# ---------------------------------------------------------------- driver


def _fmt(values: Sequence[float]) -> str:
    if not values:
        return 'n/a'
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def summarize(records: list[dict], out: str) -> str:
    lines = []
    for scenario in SCENARIOS:
        for net in NETS:
            rows = [
                r for r in records if r['job']['scenario'] == scenario and r['job']['net'] == net
            ]
            if not rows:
                continue
            conds = CONDITIONS[scenario]
            lines += [
                f'\n### {scenario}: UNet-{net} ({len({r["job"]["seed"] for r in rows})} seeds)\n',
                '| method | mean mIoU | '
                + ' | '.join(conds)
                + ' | ms / image (threads) | peak RSS MiB (+ over loaded) | resets |',
                '|---' * (len(conds) + 5) + '|',
            ]
            for method in METHODS:
                rs = [r for r in rows if r['job']['method'] == method]
                if not rs:
                    continue
                ms = statistics.mean(r['ms_per_image'] for r in rs)
                peak = max(r['peak_rss_mib'] for r in rs)
                grow = max(r['peak_rss_mib'] - r['rss_loaded_mib'] for r in rs)
                lines.append(
                    f'| {LABELS[method]} | {_fmt([r["mean_mIoU"] for r in rs])} | '
                    + ' | '.join(_fmt([r['mIoU'][c] for r in rs if c in r['mIoU']]) for c in conds)
                    + f' | {ms:.0f} ({rs[0]["threads"]}) | {peak:.0f} (+{grow:.0f}) | '
                    f'{sum(r["resets"] for r in rs)} |'
                )
    text = '\n'.join(lines) + '\n'
    with open(osp.join(out, 'summary.md'), 'w') as f:
        f.write(text)
    with open(osp.join(out, 'summary.json'), 'w') as f:
        json.dump(records, f, indent=1)
    return text


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='work_dirs/test_time', help='output folder')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='source-model seeds')
    p.add_argument(
        '--scenarios',
        nargs='+',
        default=list(SCENARIOS),
        choices=list(SCENARIOS),
        help='test streams',
    )
    p.add_argument(
        '--nets', nargs='+', default=list(NETS), choices=list(NETS), help='source networks'
    )
    p.add_argument(
        '--methods',
        nargs='+',
        default=list(METHODS),
        choices=list(METHODS),
        help='test-time methods',
    )
    p.add_argument('--per-condition', type=int, default=6, help='synthetic images per condition')
    p.add_argument('--day', type=int, default=6, help='CamVid day frames')
    p.add_argument('--dusk', type=int, default=14, help='CamVid dusk frames')
    p.add_argument('--batch', type=int, default=4, help='images per adaptation step')
    p.add_argument(
        '--cotta-scales',
        type=float,
        nargs='+',
        default=None,
        help="CoTTA's averaged teacher scales (default: the config's 7 scales x flip)",
    )
    p.add_argument('--jobs', type=int, default=1, help='runs at a time (one thread each)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_job(job: dict, out: str, env: dict) -> Optional[dict]:
    """One run in its own process, reused when its record exists."""
    path = osp.join(out, 'runs', job['name'] + '.json')
    if not osp.isfile(path):
        res = subprocess.run(
            [PY, osp.abspath(__file__), '--worker', json.dumps(job)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            print(f'{job["name"]} failed:\n{res.stderr[-3000:]}', flush=True)
            return None
        with open(path, 'w') as f:
            f.write(res.stdout.strip().splitlines()[-1])
    with open(path) as f:
        rec = json.load(f)
    print(
        f'{job["name"]}: mean mIoU {rec["mean_mIoU"]:.2f} {rec["mIoU"]} '
        f'{rec["ms_per_image"]:.0f} ms/img ({rec["threads"]} thread), peak '
        f'{rec["peak_rss_mib"]:.0f} MiB, resets {rec["resets"]}, {rec["wall_s"]} s',
        flush=True,
    )
    return rec


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    os.makedirs(osp.join(args.out, 'runs'), exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    records: list[dict] = []
    for scenario in args.scenarios:
        for net in args.nets:
            ckpt = make_source(args.out, scenario, net)
            jobs = []
            for seed in args.seeds:  # seeds outer: an interrupted run has whole seeds
                for method in args.methods:
                    jobs.append(
                        dict(
                            name=f'{scenario}_{net}_{method}_seed{seed}',
                            seed=seed,
                            scenario=scenario,
                            net=net,
                            method=method,
                            config=SCENARIOS[scenario]['leaf'].format(METHODS[method]),
                            checkpoint=osp.abspath(ckpt),
                            per_condition=args.per_condition,
                            day=args.day,
                            dusk=args.dusk,
                            batch=args.batch,
                            cotta_scales=args.cotta_scales,
                        )
                    )
            with ThreadPoolExecutor(args.jobs) as pool:
                for rec in pool.map(lambda j: run_job(j, args.out, env), jobs):
                    if rec is not None:
                        records.append(rec)
            summarize(records, args.out)
    print(summarize(records, args.out))


if __name__ == '__main__':
    main()
