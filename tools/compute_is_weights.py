"""Per-image class statistics of the target training set, for importance sampling (SAC).

``python tools/compute_is_weights.py CONFIG CHECKPOINT --out weights.json`` predicts every
image of the config's target training branch (without augmentation) with the checkpoint and
writes, per image, the number of pixels predicted as each class. ``ImportanceSampler`` turns
them into class-balanced sampling probabilities.
"""

import argparse
import json
import os
import os.path as osp

import torch
from mmengine.config import DictAction

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader)
from uda.data.multi_branch import uda_collate
from uda.engine.checkpoint import load_segmentor_weights
from uda.engine.config import add_device_argument, load_config
from uda.models.segmentor import architecture_only
from uda.registry import DATASETS, MODELS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Write importance-sampling statistics.')
    parser.add_argument('config', help='config file (its target training branch is used)')
    parser.add_argument('checkpoint', help='checkpoint whose predictions give the statistics')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument('--branch', default='target', help='training branch to analyse')
    parser.add_argument(
        '--which',
        default='student',
        choices=['student', 'teacher'],
        help='network of the checkpoint',
    )
    parser.add_argument('--batch-size', type=int, default=4, help='images per forward')
    add_device_argument(parser)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={}, help='override config keys'
    )
    return parser.parse_args()


@torch.no_grad()
def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {args.checkpoint}.')
    cfg = load_config(args.config, args.cfg_options, work_dir=osp.dirname(args.out) or '.')
    branches = cfg.train_dataloader.dataset.get('branches', {})
    if args.branch not in branches:
        raise KeyError(
            f"{args.config}: train_dataloader.dataset has no branch '{args.branch}' "
            f'(branches: {sorted(branches)}); pass --branch.'
        )
    ds_cfg = dict(branches[args.branch])
    ds_cfg['pipeline'] = []  # whole images, no augmentation: one statistic per image
    dataset = DATASETS.build(ds_cfg)
    # The checkpoint holds every weight: the init file (ImageNet ResNet-101 ...) is not read.
    cfg.model['segmentor'] = architecture_only(cfg.model['segmentor'])
    model = MODELS.build(cfg.model)
    # Strict: statistics from a network with random layers would silently skew the sampler.
    load_segmentor_weights(
        model.segmentor_for(args.which), args.checkpoint, args.which, args.config
    )
    model.to(args.device).eval()
    num_classes = model.num_classes
    entries = []
    for start in range(0, len(dataset), args.batch_size):
        idx = list(range(start, min(start + args.batch_size, len(dataset))))
        batch = uda_collate([dataset[i] for i in idx])
        data = model.data_preprocessor(batch, False)
        logits = model.inference(data['inputs'], args.which)
        for k, sample in enumerate(data['data_samples']):
            h, w = sample['img_shape']
            pred = logits[k, :, :h, :w].argmax(0).flatten()
            counts = torch.bincount(pred, minlength=num_classes).cpu().tolist()
            entries.append(dict(index=idx[k], img_path=sample.get('img_path', ''), counts=counts))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(
            dict(num_classes=num_classes, checkpoint=osp.abspath(args.checkpoint), images=entries),
            f,
        )
    print(f'{len(entries)} images -> {args.out}')


if __name__ == '__main__':
    main()
