"""ONNX export with dynamic batch, height and width, checked with onnxruntime."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from uda.export.common import LogitsOnly

OPSET = 17


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as err:
        raise ImportError(f'ONNX export/inference needs {module}: pip install {module}.') from err


def export_onnx(net: nn.Module, path: str, stride: int, opset: int = OPSET) -> None:
    """Trace ``net`` into ``path`` with axes 0, 2, 3 of input and output named dynamic.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no onnxscript and its
    dynamic H/W graphs of smp models match PyTorch; the verification catches any regression.
    """
    _require('onnx')
    example = torch.zeros(1, 3, 2 * stride, 3 * stride)
    dyn = {0: 'batch', 2: 'height', 3: 'width'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # deprecation + tracer warnings on shape checks
        torch.onnx.export(
            LogitsOnly(net).eval(),
            (example,),
            path,
            input_names=['input'],
            output_names=['logits'],
            dynamic_axes=dict(input=dyn, logits=dyn),
            opset_version=opset,
            dynamo=False,
        )
    import onnx

    onnx.checker.check_model(onnx.load(path))


def onnx_runner(path: str, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``float32 [B, 3, H, W] -> logits`` backed by an onnxruntime CPU session."""
    _require('onnxruntime')
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return run
