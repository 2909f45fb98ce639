"""mIoU and CPU latency of a trained network exported to ONNX in fp32, fp16 and int8.

Each precision is exported and verified by :func:`uda.export.export` (int8 calibrated on
``--calibration`` target images of the config); then PyTorch and each ONNX file (onnxruntime,
CPU, ``--threads`` intra-op threads) segment the config's validation set one image at a time
(normalised as the sidecar says, padded to the stride, logits cropped back), scored with the
config's protocol, and timed (median per image; ``--clock cpu``: process CPU time, the compute
time at one thread on a shared machine). ::

    CAMVID_ROOT=/path/to/camvid OMP_NUM_THREADS=1 python benchmarks/export_precision.py \\
        configs/abn/abn_unet-resnet18_200_camvidday2dusk-128x128.py work_dir/iter_200.pth
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import uda.engine  # noqa: E402,F401  (checkpoint loader)
from uda.data.classes import get_protocol  # noqa: E402
from uda.evaluation.iou_metric import confusion_matrix, iou_from_confusion  # noqa: E402
from uda.export import export  # noqa: E402
from uda.export.common import load_segmentor  # noqa: E402
from uda.export.onnx import onnx_runner  # noqa: E402
from uda.registry import DATASETS  # noqa: E402


def evaluate(
    run: Callable[[np.ndarray], np.ndarray],
    dataset: Any,
    meta: dict,
    num_classes: int,
    limit: int,
    clock: str,
    eval_ids: Any = None,
) -> tuple[float, float]:
    """(mIoU in %, median seconds per image) of ``run`` on the first ``limit`` images."""
    stride = int(meta['stride'])
    mean = np.asarray(meta['normalization']['mean'], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(meta['normalization']['std'], np.float32).reshape(1, 3, 1, 1)
    now = time.process_time if clock == 'cpu' else time.perf_counter
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    times = []
    for i in range(min(limit, len(dataset))):
        item = dataset[i]
        x = (item['inputs'].numpy()[None].astype(np.float32) - mean) / std
        h, w = x.shape[-2:]
        ph, pw = -h % stride, -w % stride
        x = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw))))
        t0 = now()
        logits = run(x)
        times.append(now() - t0)
        pred = torch.from_numpy(np.asarray(logits)[0, :, :h, :w].argmax(0))
        conf += confusion_matrix(pred, item['data_samples']['gt_sem_seg'], num_classes)
    miou = iou_from_confusion(conf.numpy(), list(eval_ids) or None)['miou']
    return 100 * miou, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--calibration', type=int, default=16, help='int8 target images')
    parser.add_argument('--threads', type=int, default=1, help='torch / onnxruntime CPU threads')
    parser.add_argument('--images', type=int, default=10**9, help='validation images to use')
    parser.add_argument(
        '--clock', choices=['cpu', 'wall'], default='cpu', help='process CPU time or elapsed time'
    )
    parser.add_argument('--out-dir', default=None, help='keep the exports here')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    init_default_scope('uda')
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    protocol = get_protocol(cfg.val_evaluator.protocol)
    num_classes = len(protocol.classes)
    net = load_segmentor(cfg, args.checkpoint)

    def torch_run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out_dir or tmp
        os.makedirs(out_dir, exist_ok=True)
        meta_fp32: dict = {}
        for precision in ('fp32', 'fp16', 'int8'):
            path = os.path.join(out_dir, f'model_{precision}.onnx')
            t0 = time.perf_counter()
            meta = export(
                cfg,
                args.checkpoint,
                'onnx',
                path,
                precision=precision,
                calibration=args.calibration,
            )
            export_s = time.perf_counter() - t0
            meta_fp32 = meta_fp32 or meta
            miou, latency = evaluate(
                onnx_runner(path, args.threads),
                dataset,
                meta,
                num_classes,
                args.images,
                args.clock,
                protocol.eval_ids,
            )
            rows.append(
                dict(
                    what=f'ONNX {precision}',
                    mIoU=miou,
                    latency_s=latency,
                    size_mib=os.path.getsize(path) / 2**20,
                    export_s=export_s,
                )
            )
        miou, latency = evaluate(
            torch_run, dataset, meta_fp32, num_classes, args.images, args.clock, protocol.eval_ids
        )
        rows.insert(0, dict(what='PyTorch fp32', mIoU=miou, latency_s=latency, size_mib=None))
    n = min(args.images, len(dataset))
    print(
        f'{n} validation images of {os.path.basename(args.config)}, one at a time, '
        f'{args.threads} thread(s), median {args.clock} time per image; int8 calibrated on '
        f'{args.calibration} target images:'
    )
    print('| model | mIoU | Δ vs PyTorch | ms/image | x PyTorch | file MiB |')
    print('|---|---:|---:|---:|---:|---:|')
    base = rows[0]
    for r in rows:
        size = '' if r['size_mib'] is None else f'{r["size_mib"]:.1f}'
        print(
            f'| {r["what"]} | {r["mIoU"]:.2f} | {r["mIoU"] - base["mIoU"]:+.2f} | '
            f'{1000 * r["latency_s"]:.1f} | {r["latency_s"] / base["latency_s"]:.2f} | {size} |'
        )
    print(json.dumps(dict(rows=rows, images=n, threads=args.threads, clock=args.clock)))


if __name__ == '__main__':
    main()
