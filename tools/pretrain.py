"""Self-supervised pretraining of the segmentor's encoder on unlabelled images:
``python tools/pretrain.py CONFIG [--work-dir DIR] [--resume] [--cfg-options ...]``.

Writes ``<work_dir>/encoder.pth`` (the "uda" layout, docs/pretraining.md) at the end; logs,
TensorBoard scalars and checkpoints as ``tools/train.py``.
"""

import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader for --resume)
from uda.engine.config import (
    build_checked_runner,
    load_training_config,
    run_tool,
    training_parser,
)
from uda.engine.dist import prepare_distributed
from uda.engine.work_dir_lock import work_dir_lock


def parse_args() -> argparse.Namespace:
    parser = training_parser(
        'Pretrain an encoder without labels.', 'folder for logs, checkpoints and encoder.pth'
    )
    return parser.parse_args()


def build_runner(cfg: Config, config_path: str) -> Runner:
    """The Runner of a pretraining config, after the key checks of ``tools/train.py``.

    Fails before the first iteration when the config is not a pretraining one (no
    ``EncoderExportHook``: nothing would be written).
    """
    hooks = [h.get('type') for h in cfg.get('custom_hooks') or [] if isinstance(h, dict)]
    if 'EncoderExportHook' not in hooks:
        raise ValueError(
            f'{config_path} has no EncoderExportHook in custom_hooks, so no encoder.pth '
            "would be written: add dict(type='EncoderExportHook') (the configs/_base_/pretrain "
            'bases do), or train a segmentation config with tools/train.py.'
        )
    return build_checked_runner(cfg, ('train',), config_path)


def main() -> None:
    args = parse_args()
    cfg = load_training_config(args)
    with work_dir_lock(cfg.work_dir):  # one run per work folder (uda/engine/work_dir_lock.py)
        prepare_distributed(cfg)
        runner = build_runner(cfg, args.config)
        runner.train()
    encoder = osp.join(cfg.work_dir, 'encoder.pth')
    if runner.rank == 0 and osp.isfile(encoder):
        print(f'pretrained encoder -> {encoder}')


if __name__ == '__main__':
    run_tool(main)  # known errors: `error: <message>`, exit 2 (UDA_DEBUG=1: the traceback)
