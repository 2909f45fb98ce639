"""Adapt a trained model to new conditions at test time, without the source data.

``python tools/adapt.py CONFIG_OR_CHECKPOINT IMAGES_OR_DATASET --method tent|cotta|bn|sac|source
[--episodic] --out DIR``

CONFIG_OR_CHECKPOINT is a checkpoint written by ``tools/train.py`` (its config is read from the
checkpoint; ``--config`` overrides) or a config with ``--checkpoint``. IMAGES_OR_DATASET is a
folder, glob or image file (no labels needed), or ``test`` / ``val``: that dataset of the
config, whose labels score the source and the adapted predictions side by side (never used to
adapt). The stream is adapted batch by batch, continually or ``--episodic`` (back to the source
weights before every batch), with the method of ``configs/_base_/methods/tta_<method>.py``
(docs/test_time.md). Writes DIR/masks, DIR/overlays, DIR/adapted.pth + DIR/config.py (export
with ``tools/export.py DIR/config.py DIR/adapted.pth``, test with ``tools/test.py``) and
DIR/summary.json (mIoU source vs adapted, ms per image, thread count, collapse resets).
"""

import argparse
import sys

import torch
from mmengine.config import DictAction

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader)
from uda.engine.adapt import (
    METHODS,
    adapt_stream,
    adaptation_config,
    dataset_stream,
    image_stream,
    network_config,
)
from uda.engine.checkpoint import CheckpointError
from uda.evaluation.image_predictor import list_images
from uda.export.metadata import build_metadata


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test-time adaptation of a trained model.')
    parser.add_argument('model', help='checkpoint (.pth) or config (.py, with --checkpoint)')
    parser.add_argument('source', help="image folder / glob / file, or 'test' / 'val'")
    parser.add_argument('--method', required=True, choices=METHODS, help='test-time method')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--episodic', action='store_true', help='reset after every batch')
    parser.add_argument('--config', help='config of the checkpoint (default: the saved one)')
    parser.add_argument('--checkpoint', help='weights when MODEL is a config')
    parser.add_argument('--batch-size', type=int, default=4, help='images per adaptation step')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--max-pred-images', type=int, help='write at most this many masks')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={}, help='override keys'
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or (None if args.model.endswith('.py') else args.model)
    if checkpoint is None:
        sys.exit('tools/adapt.py: a config needs --checkpoint (the trained weights).')
    try:
        net_cfg = network_config(args.model, args.config)
        cfg = adaptation_config(net_cfg, args.method, args.episodic)
        cfg.merge_from_dict(args.cfg_options)
        if args.source in ('test', 'val'):
            batches = dataset_stream(cfg, args.source, args.batch_size)
        else:
            batches = image_stream(list_images(args.source), args.batch_size)
        num_classes = int(cfg.model.get('num_classes') or cfg.model.segmentor.num_classes)
        meta = build_metadata(cfg, num_classes, 'student', checkpoint, 'pytorch')
        eval_ids = None
        if cfg.get('test_evaluator'):  # the config's protocol: its evaluated classes
            from uda.registry import METRICS

            metric = METRICS.build(dict(cfg.test_evaluator, print_table=False, out_file=None))
            eval_ids = metric.eval_ids
        summary = adapt_stream(
            cfg,
            checkpoint,
            batches,
            args.out,
            meta['palette'],
            eval_ids,
            num_classes,
            int(cfg.model.get('ignore_index', 255)),
            args.max_pred_images,
        )
    except (FileNotFoundError, CheckpointError, KeyError, ValueError) as err:
        sys.exit(f'tools/adapt.py: {err}')
    which = cfg.test_cfg.get('predict_with', 'student')
    print(
        f'{args.method} ({summary["reset_mode"]}): {summary["images"]} images, '
        f'{summary["ms_per_image"]:.0f} ms/image ({summary["threads"]} threads), '
        f'{len(summary["resets"])} collapse resets'
    )
    if 'mIoU' in summary:
        miou = summary['mIoU']
        print(f'mIoU  source {miou["source"]:.2f}  adapted {miou["adapted"]:.2f}')
    print(
        f'-> {args.out}/masks, overlays, adapted.pth, config.py, summary.json. Export: python '
        f'tools/export.py {args.out}/config.py {args.out}/adapted.pth --format onnx '
        f'--out {args.out}/adapted.onnx --which {which}'
    )


if __name__ == '__main__':
    main()
