"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]``.

Writes ``metrics.json`` (mIoU, per-class IoU, pixel accuracy), ``per_class.md`` and coloured
predictions (``pred/``) to the work dir, and prints the per-class table.
"""
import argparse
import json
import os.path as osp

from mmengine.config import DictAction
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader)
from uda.engine.config import load_config
from uda.evaluation import format_table


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint on the test set.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='folder for metrics.json and predictions')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys')
    parser.add_argument('--max-pred-images', type=int, default=None,
                        help='write at most this many coloured predictions (default: all)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {args.checkpoint}.')
    cfg = load_config(args.config, args.cfg_options, args.work_dir, None, args.launcher)
    if args.work_dir is None:
        cfg.work_dir = osp.join(cfg.work_dir, 'test')
        cfg.test_evaluator['out_file'] = osp.join(cfg.work_dir, 'metrics.json')
    cfg.load_from, cfg.resume = args.checkpoint, False
    protocol = cfg.test_evaluator.get('protocol', 'cityscapes19')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(
        type='PredictionWriterHook', out_dir=osp.join(cfg.work_dir, 'pred'), protocol=protocol,
        max_images=args.max_pred_images)]
    runner = Runner.from_cfg(cfg)
    runner.test()
    if runner.rank == 0:
        path = cfg.test_evaluator['out_file']
        with open(path) as f:
            report = json.load(f)
        names = list(report['IoU'])
        as_frac = [float('nan') if v is None else v / 100 for v in report['IoU'].values()]
        accs = [float('nan') if v is None else v / 100 for v in report['Acc'].values()]
        table = format_table(names, as_frac, accs, markdown=True)
        with open(osp.join(cfg.work_dir, 'per_class.md'), 'w') as f:
            f.write(f"mIoU {report['mIoU']:.2f} ({report['protocol']})\n\n{table}\n")
        print(f"mIoU {report['mIoU']:.2f}  aAcc {report['aAcc']:.2f}  -> {path}")


if __name__ == '__main__':
    main()
