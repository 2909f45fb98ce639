"""Share of the training step spent waiting for data, per setting and loader option.

Runs ``--iters`` training iterations of a setting's config through the Runner (validation and
checkpoints off) and reads mmengine's ``IterTimerHook`` scalars: ``train/data_time`` (the time
from the end of one iteration to the start of the next: the wait for ``next(dataloader)``) and
``train/time`` (the whole iteration, data wait included). The share is
sum(data_time) / sum(time) over the iterations after ``--skip`` (worker start-up). Settings:

- ``demo``: the synthetic-shift demo (configs/demo, 96x192, scenes rendered on the fly);
- ``camvid``: CamVid day -> dusk at 128x128 (``CAMVID_ROOT``, default ../shared/data/camvid);
- ``cityscapes512``: the GTA5 -> Cityscapes 512x512 setting (full-size PNGs decoded, resized to
  1280x720 / 1024x512 and cropped to 512x512) on random images written once to ``--fake-root``
  in the official layouts (GTA5 1914x1052, Cityscapes 2048x1024) when no real data is given.

    python benchmarks/data_wait.py --setting demo --method sac --iters 12 \
        --workers 0 1 2 [--pin-memory] [--no-persistent]
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Optional

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = {
    ('demo', 'abn'): 'configs/demo/abn_unet-resnet18_400_synthetic-96x192.py',
    ('demo', 'sac'): 'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py',
    ('camvid', 'abn'): 'configs/abn/abn_unet-resnet18_200_camvidday2dusk-128x128.py',
    ('camvid', 'sac'): 'configs/sac/sac_unet-resnet18_200_camvidday2dusk-128x128.py',
    ('cityscapes512', 'abn'): 'configs/abn/abn_unet-resnet18_1k_gta2cityscapes-512x512.py',
}
# Official frame sizes (W x H): GTA5 1914x1052 (uda/data/gta5.py), Cityscapes 2048x1024.
GTA5_SIZE, CITYSCAPES_SIZE = (1914, 1052), (2048, 1024)


def write_fake_cityscapes_gta(root: str, frames: int = 8) -> tuple[str, str]:
    """Random full-size GTA5 and Cityscapes frames (smooth noise, so PNG sizes are realistic
    rather than incompressible) in their official layouts; reused when present."""
    from PIL import Image

    gta, city = osp.join(root, 'gta5'), osp.join(root, 'cityscapes')
    done = osp.join(root, f'done_{frames}')
    if osp.isfile(done):
        return gta, city
    rng = np.random.default_rng(0)

    def image(w: int, h: int) -> Image.Image:
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        big = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        noise = rng.integers(0, 24, (h, w, 3), dtype=np.uint8)
        return Image.fromarray(np.asarray(big) // 2 + noise)

    def label(w: int, h: int) -> Image.Image:
        small = rng.integers(0, 34, (h // 32, w // 32), dtype=np.uint8)
        return Image.fromarray(small).resize((w, h), Image.NEAREST)

    for sub in ('images', 'labels'):
        os.makedirs(osp.join(gta, sub), exist_ok=True)
    for i in range(1, frames + 1):
        image(*GTA5_SIZE).save(osp.join(gta, 'images', f'{i:05d}.png'))
        label(*GTA5_SIZE).save(osp.join(gta, 'labels', f'{i:05d}.png'))
    for split in ('train', 'val'):
        for sub in ('leftImg8bit', 'gtFine'):
            os.makedirs(osp.join(city, sub, split, 'aachen'), exist_ok=True)
        for i in range(frames if split == 'train' else 1):
            stem = f'aachen_{i:06d}_000019'
            image(*CITYSCAPES_SIZE).save(
                osp.join(city, 'leftImg8bit', split, 'aachen', f'{stem}_leftImg8bit.png')
            )
            label(*CITYSCAPES_SIZE).save(
                osp.join(city, 'gtFine', split, 'aachen', f'{stem}_gtFine_labelIds.png')
            )
    open(done, 'w').close()
    return gta, city


def measure(
    config: str,
    iters: int,
    skip: int,
    workers: int,
    pin_memory: bool,
    persistent: bool,
    work_dir: str,
    options: Optional[dict] = None,
) -> dict[str, Any]:
    """Data-wait share of ``iters`` training iterations of ``config`` with these loader
    settings (one Runner, in this process)."""
    import torch
    from mmengine.runner import Runner

    from uda.engine.config import load_config

    cfg = load_config(osp.join(ROOT, config), options, work_dir)
    loader = cfg.train_dataloader
    loader.num_workers = workers
    loader.persistent_workers = bool(persistent and workers > 0)
    loader.pin_memory = pin_memory
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, by_epoch=False)
    cfg.default_hooks.pop('visualization', None)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**9)
    cfg.log_level = 'WARNING'
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    start = (cfg.model.get('teacher') or {}).get('start_iter', 0)
    if start:  # time the self-training step, not the warm-up
        cfg.model.teacher.start_iter = 0
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    data = np.asarray(hub.get_scalar('train/data_time').data[0])[skip:]
    step = np.asarray(hub.get_scalar('train/time').data[0])[skip:]
    return dict(
        config=config,
        workers=workers,
        pin_memory=pin_memory,
        persistent_workers=bool(persistent and workers > 0),
        threads=torch.get_num_threads(),
        iters=int(len(step)),
        step_s=float(step.mean()),
        data_wait_s=float(data.mean()),
        share=float(data.sum() / step.sum()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--setting',
        choices=['demo', 'camvid', 'cityscapes512'],
        default='demo',
        help='data setting (see the module docstring)',
    )
    parser.add_argument(
        '--method', choices=['abn', 'sac'], default='abn', help='method config of the setting'
    )
    parser.add_argument('--iters', type=int, default=12, help='training iterations per run')
    parser.add_argument('--skip', type=int, default=2, help='first iterations left out')
    parser.add_argument(
        '--workers',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help='DataLoader worker counts to compare',
    )
    parser.add_argument('--pin-memory', action='store_true', help='DataLoader pin_memory=True')
    parser.add_argument(
        '--no-persistent', action='store_true', help='DataLoader persistent_workers=False'
    )
    parser.add_argument(
        '--fake-root',
        default='work_dirs/fake_cityscapes_gta5',
        help='cityscapes512: folder of the random full-size images (written once)',
    )
    parser.add_argument('--work-dir', default='work_dirs/data_wait', help='folder of the runs')
    args = parser.parse_args()
    if (args.setting, args.method) not in CONFIGS:
        raise SystemExit(f'No {args.method} config for {args.setting}; use --method abn.')
    config = CONFIGS[(args.setting, args.method)]
    options: dict[str, Any] = {}
    if args.setting == 'camvid' and not os.environ.get('CAMVID_ROOT'):
        os.environ['CAMVID_ROOT'] = osp.join(ROOT, '..', 'shared', 'data', 'camvid')
    if args.setting == 'cityscapes512':
        if not (os.environ.get('GTA5_ROOT') and os.environ.get('CITYSCAPES_ROOT')):
            gta, city = write_fake_cityscapes_gta(args.fake_root)
            os.environ['GTA5_ROOT'], os.environ['CITYSCAPES_ROOT'] = gta, city
    rows = []
    for workers in args.workers:
        row = measure(
            config,
            args.iters,
            args.skip,
            workers,
            args.pin_memory,
            not args.no_persistent,
            osp.join(args.work_dir, f'{args.setting}_{args.method}_w{workers}'),
            options,
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f'\n{args.setting} / {args.method} ({config}), threads {rows[0]["threads"]}')
    print('| workers | pin_memory | persistent | step s | data wait s | share |')
    print('|---:|---|---|---:|---:|---:|')
    for r in rows:
        print(
            f'| {r["workers"]} | {r["pin_memory"]} | {r["persistent_workers"]} | '
            f'{r["step_s"]:.3f} | {r["data_wait_s"]:.4f} | {100 * r["share"]:.1f} % |'
        )


if __name__ == '__main__':
    main()
