"""CPU cost of one training step of ABN, MinEnt, AdvEnt (single / multi-level), AdvEnt+MinEnt.

Builds each synthetic config's model and optimisers, runs ``--steps`` train steps on a random
batch of the config's size (4 source + 4 target images, 96x192) after ``--warmup`` steps, and
prints the median CPU seconds per step (``time.process_time``, one thread: on a shared,
oversubscribed machine the wall time of a 2-thread run mostly measures the neighbours).

    python benchmarks/adversarial_step_cost.py --steps 5 --warmup 2
"""

import argparse
import statistics
import time

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import uda.engine  # noqa: F401
from tests.conftest import toy_batch
from uda.registry import MODELS

RUNS = {
    'ABN': ('configs/demo/abn_unet-resnet18_400_synthetic-96x192.py', False),
    'MinEnt': ('configs/advent/minent_unet-resnet18_400_synthetic-96x192.py', False),
    'AdvEnt (main level only)': (
        'configs/advent/advent_unet-resnet18_400_synthetic-96x192.py',
        True,
    ),
    'AdvEnt': ('configs/advent/advent_unet-resnet18_400_synthetic-96x192.py', False),
    'AdvEnt+MinEnt': (
        'configs/advent/advent-minent_unet-resnet18_400_synthetic-96x192.py',
        False,
    ),
    'FeatureGRL': (
        'configs/feature_adversarial/feature-adversarial_unet-resnet18_400_synthetic-96x192.py',
        False,
    ),
}


def step_cost(path: str, main_only: bool, steps: int, warmup: int) -> float:
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.to_dict()
    if main_only:
        model_cfg['segmentor'].pop('aux_head', None)
        for term in model_cfg['terms']:
            term['aux_weight'] = 0.0
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(model_cfg)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    h, w = cfg.scene_size
    batch = toy_batch(batch=cfg.train_dataloader.batch_size, h=h, w=w)
    times = []
    for i in range(warmup + steps):
        t0 = time.process_time()
        model.train_step(batch, optim)
        if i >= warmup:
            times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=5, help='timed train steps per method')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps before them')
    args = parser.parse_args()
    torch.set_num_threads(1)
    costs = {name: step_cost(p, m, args.steps, args.warmup) for name, (p, m) in RUNS.items()}
    print('| run | CPU s / step (1 thread, median) | vs ABN |')
    print('|---|---:|---:|')
    for name, c in costs.items():
        print(f'| {name} | {c:.2f} | {c / costs["ABN"]:.2f}x |')


if __name__ == '__main__':
    main()
