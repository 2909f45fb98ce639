"""Smaller ONNX exports: fp16 weights and activations, or int8 by static quantisation.

Both start from the verified fp32 graph of :func:`uda.export.onnx.export_onnx`:

- ``fp16``: onnxruntime's converter (``onnxruntime.transformers.float16
  .convert_float_to_float16``, ``keep_io_types=True``): weights and activations in float16,
  input and output stay float32, so callers are unchanged.
- ``int8``: onnxruntime static quantisation (``onnxruntime.quantization.quantize_static``,
  QDQ format, per-channel int8 weights, uint8 activations) whose activation ranges are
  calibrated on images of the *target* set (the domain the network is deployed on): the
  training config's target branch (``target`` / ``unlabeled``), else its validation set, with
  the training pipeline's crops and the sidecar's normalisation.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from uda.registry import DATASETS

PRECISIONS = ('fp32', 'fp16', 'int8')
# Target branches looked up in the training set, in this order.
TARGET_BRANCHES = ('target', 'unlabeled', 'unlabelled')


def to_fp16(src: str, dst: str) -> None:
    """Write ``src`` (an fp32 ONNX model) with float16 weights and activations to ``dst``."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(src), keep_io_types=True)
    _sort_nodes(model.graph)  # the converter appends its input casts after their readers
    onnx.checker.check_model(model)
    onnx.save(model, dst)


def _sort_nodes(graph: Any) -> None:
    """Reorder ``graph.node`` topologically (ONNX requires it; the order among ready nodes
    is kept)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {''}
    todo, ordered = list(graph.node), []
    while todo:
        ready = [n for n in todo if all(i in known for i in n.input)]
        if not ready:
            raise ValueError('fp16 conversion produced a graph with a cycle or a missing input.')
        for n in ready:
            known.update(n.output)
        ordered += ready
        todo = [n for n in todo if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def target_dataset_cfg(cfg: Config) -> tuple[Any, str]:
    """The config of the target images (the dataset, and where in the config it was found)."""
    train = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    branches = train.get('branches') or {}
    for name in TARGET_BRANCHES:
        if name in branches:
            ds = branches[name]
            ds = ds.get('dataset', ds) if isinstance(ds, dict) and 'type' not in ds else ds
            return ds, f'train_dataloader.dataset.branches.{name}'
    val = (cfg.get('val_dataloader') or {}).get('dataset')
    if val:
        return val, 'val_dataloader.dataset'
    raise KeyError(
        'int8 calibration needs target images: the config has no train_dataloader target '
        f'branch ({", ".join(TARGET_BRANCHES)}) and no val_dataloader.dataset.'
    )


def calibration_images(
    cfg: Config, count: int, stride: int, normalization: dict, seed: int = 0
) -> list[np.ndarray]:
    """``count`` normalised float32 [1, 3, H, W] target images (H, W cut to multiples of
    ``stride``), drawn without replacement with ``seed``."""
    if count < 1:
        raise ValueError(f'calibration={count}: give at least 1 image.')
    init_default_scope('uda')
    ds_cfg, where = target_dataset_cfg(cfg)
    dataset = DATASETS.build(ds_cfg)
    if len(dataset) == 0:
        raise ValueError(f'int8 calibration: {where} has no images.')
    order = np.random.default_rng(seed).permutation(len(dataset))[:count]
    mean = np.asarray(normalization['mean'], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(normalization['std'], np.float32).reshape(1, 3, 1, 1)
    images = []
    for i in order:
        x = dataset[int(i)]['inputs'].numpy()[None].astype(np.float32)
        h, w = (x.shape[2] // stride) * stride, (x.shape[3] // stride) * stride
        if h == 0 or w == 0:
            raise ValueError(
                f'int8 calibration: image {i} of {where} ({x.shape[2]}x{x.shape[3]}) is '
                f'smaller than the network stride {stride}.'
            )
        images.append(np.ascontiguousarray((x[:, :, :h, :w] - mean) / std))
    return images


def quantize_int8(src: str, dst: str, images: list[np.ndarray]) -> None:
    """Statically quantise ``src`` to ``dst`` with activation ranges from ``images``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it: Iterator[np.ndarray] = iter(images)

        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            x = next(self.it, None)
            return None if x is None else {'input': x}

        def rewind(self) -> None:
            self.it = iter(images)

    quantize_static(
        src,
        dst,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def verify_int8(
    reference: Any, exported: Any, images: list[np.ndarray], max_rel_error: float, what: str
) -> list[dict]:
    """Compare int8 and PyTorch logits on target images: the relative L2 error
    ``||int8 - torch|| / ||torch||`` of each image must stay below ``max_rel_error`` (elementwise
    tolerances do not fit quantisation noise); records it with the argmax agreement."""
    from uda.export.common import ExportVerificationError

    records = []
    for x in images:
        with torch.no_grad():
            ref = reference(torch.from_numpy(x)).float().numpy()
        out = np.asarray(exported(x), dtype=np.float32)
        if out.shape != ref.shape:
            raise ExportVerificationError(
                f'{what}: output shape {out.shape} != PyTorch {ref.shape} for input {x.shape}.'
            )
        rel = float(np.linalg.norm(out - ref)) / max(float(np.linalg.norm(ref)), 1e-12)
        agree = float((out.argmax(1) == ref.argmax(1)).mean())
        records.append(
            dict(
                shape=list(x.shape),
                max_abs_diff=float(np.abs(out - ref).max()),
                rel_l2_error=rel,
                argmax_agreement=agree,
            )
        )
        if rel > max_rel_error:
            raise ExportVerificationError(
                f'{what}: relative L2 error {rel:.3g} of the logits exceeds {max_rel_error:g} '
                f'on a target image {tuple(x.shape)} (argmax agreement {100 * agree:.2f}%): '
                'calibrate on more target images (--calibration) or ship fp16.'
            )
    return records


def remove_quietly(path: str) -> None:
    if os.path.isfile(path):
        os.remove(path)
