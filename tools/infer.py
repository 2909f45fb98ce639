"""Predict masks for a folder or glob of images.

``python tools/infer.py SOURCE --model MODEL [--config CONFIG] --out-dir DIR``

SOURCE is a folder (searched recursively), a glob pattern ('frames/*.jpg') or one image.
MODEL is a training checkpoint (.pth, needs --config) or a file written by tools/export.py
(.onnx / .torchscript / .safetensors, read with its sidecar MODEL.json). Writes
DIR/masks/<name>.png (palette PNG: pixel = class id) and DIR/overlays/<name>.png. Images of any
size work: each is padded to the network's stride and the prediction cropped back; an image
above --max-pixels is predicted row by row of sliding windows (bounded memory, a progress bar).
Images are read as a person sees them: EXIF orientation applied, grey / palette / RGBA / CMYK
/ 16-bit converted to RGB (``uda.data.base.read_image``); masks have the upright size.
Configs and checkpoints are read from local files only, never from a URL.
"""

import argparse
import os
import os.path as osp

from tqdm import tqdm

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader)
from uda.data.base import read_image
from uda.engine.checkpoint import refuse_url
from uda.engine.config import add_device_argument, run_tool
from uda.evaluation.image_predictor import ImagePredictor, list_images, save_prediction
from uda.models.layouts import read_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Predict masks for image files.')
    parser.add_argument('source', help='image folder, glob pattern or image file')
    parser.add_argument(
        '--model',
        required=True,
        help='checkpoint (.pth) or export (.onnx/.torchscript/.safetensors)',
    )
    parser.add_argument('--config', help='training config (required with a .pth checkpoint)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument(
        '--which',
        choices=['student', 'teacher'],
        default='student',
        help='network of a .pth checkpoint',
    )
    parser.add_argument(
        '--mode',
        choices=['whole', 'slide', 'aug'],
        help='inference mode (default: the config test_cfg, else whole)',
    )
    add_device_argument(parser)
    parser.add_argument(
        '--layout', default='auto', help='layout of a foreign .pth (default: auto-detect)'
    )
    parser.add_argument('--alpha', type=float, default=0.5, help='mask weight in overlays')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=2048 * 2048,
        help='larger images are predicted with sliding windows, one row at a time',
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if osp.isfile(args.out_dir):
        raise NotADirectoryError(f'--out-dir {args.out_dir} is a file; give a folder.')
    refuse_url(args.model, '--model')
    if args.config:
        refuse_url(args.config, '--config')
    images = list_images(args.source)
    mode = {'mode': args.mode} if args.mode else None
    if args.model.endswith('.pth'):
        if not args.config:
            raise ValueError('A .pth checkpoint needs --config (the config it was trained with).')
        read_checkpoint(args.model, args.layout)  # a foreign file: converted (and reused)
        predictor = ImagePredictor.from_checkpoint(
            args.config, args.model, args.which, mode, args.device
        )
    else:
        predictor = ImagePredictor.from_exported(args.model, mode, args.device)
    predictor.max_pixels = args.max_pixels
    root = osp.commonpath([osp.dirname(osp.abspath(p)) for p in images])
    for path in tqdm(images, desc='infer', unit='img'):
        image = read_image(path, exif_transpose=True)  # as a person sees the photo
        label = predictor(image, osp.basename(path))
        save_prediction(
            label,
            image,
            predictor.palette,
            args.out_dir,
            osp.relpath(osp.abspath(path), root),
            args.alpha,
        )
    print(
        f'{len(images)} masks -> {os.path.join(args.out_dir, "masks")}, overlays -> '
        f'{os.path.join(args.out_dir, "overlays")}'
    )


if __name__ == '__main__':
    run_tool(main)  # known errors: `error: <message>`, exit 2 (UDA_DEBUG=1: the traceback)
