"""TorchScript export (``torch.jit.trace``), loadable with ``torch.jit.load`` without uda."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from uda.export.common import LogitsOnly


def export_torchscript(net: nn.Module, path: str, stride: int) -> None:
    """Trace ``net`` at one stride-multiple size; shapes stay symbolic (checked at two sizes)."""
    example = torch.zeros(1, 3, 2 * stride, 3 * stride)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')  # tracer warnings on Python-side shape checks
        traced = torch.jit.trace(LogitsOnly(net).eval(), example, check_trace=False)
    traced.save(path)


def torchscript_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function ``float32 [B, 3, H, W] -> logits`` backed by the saved TorchScript module."""
    module = torch.jit.load(path, map_location='cpu').eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    return run
