"""Evaluation throughput (images/s) of whole, sliding-window and multi-scale+flip inference.

UNet-ResNet18 (configs/_base_/models/unet_resnet18.py) with random weights (throughput does
not depend on the weights) on CamVid test images at full resolution (480x360), batch 1, the
path of the validation loop: uint8 image -> SegDataPreprocessor (normalise, pad to 32) ->
Adapter.predict (inference mode from test_cfg, crop back, argmax). Optionally the same whole-
image prediction through an ONNX export in onnxruntime.

    python benchmarks/eval_throughput.py --images 30 --threads 2 [--onnx]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from uda.registry import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID = os.path.join(ROOT, '..', 'shared', 'data', 'camvid')
MODES = dict(
    whole=dict(mode='whole'),
    slide=dict(mode='slide', crop_size=(256, 256), stride=(170, 170)),
    aug=dict(mode='aug', scales=(0.75, 1.0, 1.25), flip=True),
)


def camvid_test_images(root: str, n: int) -> list[np.ndarray]:
    list_file = os.path.join(root, 'test.txt')
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f'CamVid not found at {root} (test.txt); pass --camvid.')
    with open(list_file) as f:
        names = [line.split()[0] for line in f if line.strip()][:n]
    return [np.asarray(Image.open(os.path.join(root, p.lstrip('/'))).convert('RGB')) for p in names]


def build_adapter(test_cfg: dict) -> torch.nn.Module:
    base = Config.fromfile(os.path.join(ROOT, 'configs/_base_/models/unet_resnet18.py'))
    seg = dict(base.segmentor, num_classes=11)
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=seg,
            data_preprocessor=base.data_preprocessor,
            terms=[dict(type='SourceCE')],
            test_cfg=test_cfg,
        )
    ).eval()


def time_adapter(
    model: torch.nn.Module, images: list[np.ndarray], warmup: int
) -> tuple[float, float]:
    def run(img: np.ndarray) -> None:
        data = dict(
            inputs=[torch.from_numpy(img).permute(2, 0, 1).contiguous()],
            data_samples=[dict(img_shape=img.shape[:2])],
        )
        with torch.no_grad():
            batch = model.data_preprocessor(data, False)
            model.predict(batch['inputs'], batch['data_samples'])

    for img in images[:warmup]:
        run(img)
    start, cpu = time.perf_counter(), time.process_time()
    for img in images:
        run(img)
    return time.perf_counter() - start, time.process_time() - cpu


def time_onnx(
    model: torch.nn.Module, images: list[np.ndarray], warmup: int, threads: int
) -> tuple[float, float]:
    from uda.evaluation.image_predictor import ImagePredictor
    from uda.export.onnx import export_onnx, onnx_runner

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'unet.onnx')
        export_onnx(model.student, path, 32)
        runner = onnx_runner(path, threads)
        pre = model.data_preprocessor

        def net(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(runner(x.numpy()))

        predictor = ImagePredictor(
            net,
            pre.mean.flatten().tolist(),
            pre.std.flatten().tolist(),
            32,
            [str(i) for i in range(11)],
            [(0, 0, 0)] * 11,
        )
        for img in images[:warmup]:
            predictor(img)
        start, cpu = time.perf_counter(), time.process_time()
        for img in images:
            predictor(img)
        return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=30, help='CamVid test images timed')
    parser.add_argument('--warmup', type=int, default=2, help='untimed images first')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--camvid', default=CAMVID, help='CamVid folder (default: CAMVID_ROOT)')
    parser.add_argument(
        '--modes', nargs='+', default=list(MODES), choices=list(MODES), help='inference modes'
    )
    parser.add_argument('--onnx', action='store_true', help='also whole-image onnxruntime')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = camvid_test_images(args.camvid, args.images)
    h, w = images[0].shape[:2]
    print(
        f'torch {torch.__version__}, {platform.processor() or platform.machine()}, '
        f'{args.threads} threads, {len(images)} CamVid test images {w}x{h}, batch 1, '
        f'UNet-ResNet18 random weights, 11 classes'
    )
    # CPU seconds (all threads of this process) are printed beside wall time: on a shared
    # machine wall time mostly measures the other processes, CPU time much less so.
    print(f'load average at start: {os.getloadavg()[0]:.1f}')
    print(
        '| mode | settings | images/s (wall) | s/image (wall) | CPU s/image |\n'
        '|---|---|---:|---:|---:|'
    )
    n = len(images)
    for name in args.modes:
        model = build_adapter(MODES[name])
        secs, cpu = time_adapter(model, images, args.warmup)
        settings = ', '.join(f'{k}={v}' for k, v in MODES[name].items() if k != 'mode')
        print(
            f'| {name} | {settings or "-"} | {n / secs:.2f} | {secs / n:.3f} | {cpu / n:.3f} |',
            flush=True,
        )
    if args.onnx:
        secs, cpu = time_onnx(build_adapter(MODES['whole']), images, args.warmup, args.threads)
        print(
            f'| whole (onnxruntime {__import__("onnxruntime").__version__}) | - | '
            f'{n / secs:.2f} | {secs / n:.3f} | {cpu / n:.3f} |',
            flush=True,
        )
    print(f'load average at end: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main()
