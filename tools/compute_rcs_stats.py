"""Per-image class statistics of the source training labels, for rare-class sampling (DAFormer).

``python tools/compute_rcs_stats.py CONFIG --out rcs_stats.json`` reads every label of the
config's source training branch (label map applied, no augmentation) and writes, per image, the
number of pixels of each class. ``RareClassSampler`` turns them into class probabilities and
per-class image lists. By default (``--at file``) the labels are counted at the resolution of
the label files, before the dataset's ``resize``, as lhoyer/MIC
``seg/tools/convert_datasets/gta.py:41-48`` counts the original GTA5 labels
(``sample_class_stats.json``), which ``min_pixels`` (3000) is compared with
(``seg/mmseg/datasets/uda_dataset.py:97-99``). ``--at dataset`` counts after ``resize``
(1914x1052 GTA5 frames at 1280x720 hold about 2.2x fewer pixels of each class, so the same
``min_pixels`` is that much stricter). The crop check of ``RareClassCrop`` is on the resized
crop in both cases, as the reference (``uda_dataset.py:128-133``).
"""

import argparse
import json
import os
import os.path as osp

import torch
from mmengine.config import DictAction
from torch.utils.data import DataLoader

from uda.data.rare_class import RareClassCrop
from uda.engine.config import load_config
from uda.registry import DATASETS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Write rare-class sampling statistics.')
    parser.add_argument('config', help='config file (its source training branch is used)')
    parser.add_argument('--out', required=True, help='output JSON file')
    parser.add_argument('--branch', default='source', help='labelled training branch')
    parser.add_argument('--workers', type=int, default=0, help='DataLoader workers')
    parser.add_argument(
        '--at',
        choices=('file', 'dataset'),
        default='file',
        help="count at the label files' resolution (DAFormer / MIC) or after the dataset's resize",
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={}, help='override config keys'
    )
    return parser.parse_args()


def branch_dataset_cfg(cfg, config: str, branch: str, at: str = 'file') -> dict:
    """The branch's dataset config without views, the RareClassCrop wrapper or augmentation
    (and without ``resize`` when counting at the files' resolution, ``at='file'``)."""
    branches = cfg.train_dataloader.dataset.get('branches', {})
    if branch not in branches:
        raise KeyError(
            f"{config}: train_dataloader.dataset has no branch '{branch}' "
            f'(branches: {sorted(branches)}); pass --branch.'
        )
    ds_cfg = dict(branches[branch])
    if 'views' in ds_cfg:
        ds_cfg = dict(ds_cfg['dataset'])
    if ds_cfg.get('type') in ('RareClassCrop', RareClassCrop):
        ds_cfg = dict(ds_cfg['dataset'])
    ds_cfg['pipeline'] = []  # whole images: one statistic per image, before any crop
    if at == 'file' and 'resize' in ds_cfg:
        ds_cfg['resize'] = None
    return ds_cfg


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, work_dir=osp.dirname(args.out) or '.')
    dataset = DATASETS.build(branch_dataset_cfg(cfg, args.config, args.branch, args.at))
    if not getattr(dataset, 'with_label', True):
        raise ValueError(
            f"{args.config}: branch '{args.branch}' has with_label=False; rare-class "
            'statistics need the labelled source branch.'
        )
    num_classes = dataset.protocol.num_classes
    ignore = dataset.ignore_index
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=args.workers)
    entries = []
    for index, sample in enumerate(loader):
        meta = sample['data_samples']
        if 'gt_sem_seg' not in meta:
            raise ValueError(
                f'{args.config}: image {meta.get("img_path", index)} of branch '
                f"'{args.branch}' has no label; rare-class statistics need labels."
            )
        gt = meta['gt_sem_seg'].flatten()
        counts = torch.bincount(gt[gt != ignore], minlength=num_classes)[:num_classes]
        entries.append(dict(index=index, img_path=meta.get('img_path', ''), counts=counts.tolist()))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(
            dict(
                num_classes=num_classes,
                config=osp.abspath(args.config),
                counted_at=args.at,
                images=entries,
            ),
            f,
        )
    print(f'{len(entries)} images -> {args.out}')


if __name__ == '__main__':
    main()
