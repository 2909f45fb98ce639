"""Export a trained network and verify it against PyTorch.

``python tools/export.py CONFIG CHECKPOINT --format onnx|torchscript|safetensors --out PATH``
``[--precision fp32|fp16|int8] [--calibration N]`` (ONNX: float16, or int8 calibrated on N
target images of the config; docs/speed_and_scale.md)

Writes PATH and PATH.json (classes, palette, normalisation, stride, architecture). The export is
reloaded (onnxruntime / torch.jit.load / rebuilt from safetensors) and its logits compared with
PyTorch's at two input sizes (uda.export.TOLERANCE); the command fails otherwise. Inputs are
normalised RGB (see the sidecar): normalisation is not baked into the graph.
"""

import argparse
import json
import os.path as osp
import sys

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader)
from uda.engine.checkpoint import CheckpointError
from uda.engine.config import read_config
from uda.export import FORMATS, ExportVerificationError, export
from uda.export.precision import PRECISIONS
from uda.models.layouts import ForeignCheckpointError, read_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a trained segmentor.')
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--format', required=True, choices=FORMATS, help='export format')
    parser.add_argument('--out', required=True, help='output file (sidecar: OUT.json)')
    parser.add_argument(
        '--which',
        choices=['student', 'teacher'],
        default='student',
        help='network of the checkpoint to export',
    )
    parser.add_argument(
        '--layout', default='auto', help='layout of a foreign checkpoint (default: auto-detect)'
    )
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='fp32',
        help='ONNX only: fp16 weights/activations, or int8 static quantisation',
    )
    parser.add_argument(
        '--calibration',
        type=int,
        default=16,
        help='int8: target images of the config that calibrate the activation ranges',
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}.')
    cfg = read_config(args.config)
    try:
        read_checkpoint(args.checkpoint, args.layout)  # a foreign file: converted (and reused)
        meta = export(
            cfg,
            args.checkpoint,
            args.format,
            args.out,
            args.which,
            precision=args.precision,
            calibration=args.calibration,
        )
    except ExportVerificationError as err:
        sys.exit(f'EXPORT FAILED VERIFICATION: {err}')
    except (FileNotFoundError, CheckpointError, ForeignCheckpointError) as err:
        sys.exit(f'tools/export.py: {err}')
    ver = meta['verification']
    sizes = ', '.join(
        f'{tuple(r["shape"])}: max|diff| {r["max_abs_diff"]:.2e}'
        + (f', rel. L2 {r["rel_l2_error"]:.3f}' if 'rel_l2_error' in r else '')
        for r in ver['sizes']
    )
    bound = (
        f'relative L2 error <= {ver["max_rel_l2_error"]:g} on target images'
        if 'max_rel_l2_error' in ver
        else f'atol {ver["atol"]:g}, rtol {ver["rtol"]:g}'
    )
    print(
        f'{args.format} {args.precision} export of the {args.which} -> {args.out} '
        f'(+ {args.out}.json)\nverified against PyTorch ({bound}): {sizes}'
    )
    print(json.dumps({k: meta[k] for k in ('num_classes', 'stride', 'normalization')}))


if __name__ == '__main__':
    main()
