"""Loading the network to export, and checking an export against PyTorch."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor

from uda.engine.checkpoint import load_segmentor_weights
from uda.models.layouts import apply_foreign_config, foreign_meta, read_checkpoint
from uda.models.segmentor import architecture_only
from uda.registry import MODELS


class ExportVerificationError(RuntimeError):
    """The exported network does not reproduce the PyTorch outputs."""


class LogitsOnly(nn.Module):
    """The segmentor as a pure ``[B, 3, H, W] -> logits [B, C, H, W]`` function for tracing."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def load_segmentor(cfg: Config, checkpoint: str, which: str = 'student') -> nn.Module:
    """Build ``cfg.model.segmentor`` and load the ``which`` weights of a checkpoint (eval mode).

    Raises a clear error when the checkpoint comes from another class count or architecture.
    A foreign (or converted) checkpoint brings its own network and preprocessing: they replace
    ``cfg.model.segmentor`` / ``data_preprocessor`` in ``cfg`` (so the export sidecar and
    ``tools/infer.py`` use the authors' input normalisation).
    """
    if 'segmentor' not in cfg.get('model', {}):
        raise KeyError(
            'The config has no model.segmentor; give the training config of the checkpoint.'
        )
    foreign = foreign_meta(read_checkpoint(checkpoint))
    if foreign is not None:
        print_log(apply_foreign_config(cfg, foreign), logger='current')
    net = MODELS.build(architecture_only(cfg.model.segmentor))
    load_segmentor_weights(net, checkpoint, which, getattr(cfg, 'filename', None) or 'the config')
    return net.eval()


def check_out_path(path: str) -> None:
    """An export target must be a file path whose folder exists or can be created."""
    if os.path.isdir(path):
        raise IsADirectoryError(
            f'--out {path} is a directory; give a file name, e.g. '
            f'{os.path.join(path, "model.onnx")}.'
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def verification_sizes(stride: int) -> list[tuple[int, int, int]]:
    """Two (batch, height, width) input sizes, different in every dimension, stride multiples."""
    return [(1, 2 * stride, 3 * stride), (2, 4 * stride, 5 * stride)]


def verify(
    reference: Callable[[Tensor], Tensor],
    exported: Callable[[np.ndarray], np.ndarray],
    stride: int,
    atol: float,
    rtol: float,
    what: str,
) -> list[dict]:
    """Compare exported and PyTorch logits at two input sizes; raise on any mismatch.

    Passes when ``|exported - torch| <= atol + rtol * |torch|`` everywhere.

    Returns:
        One record per size: ``shape``, ``max_abs_diff``, ``argmax_agreement``.
    """
    g = torch.Generator().manual_seed(0)
    records = []
    for b, h, w in verification_sizes(stride):
        x = torch.randn(b, 3, h, w, generator=g)
        with torch.no_grad():
            ref = reference(x).float().numpy()
        out = np.asarray(exported(x.numpy()), dtype=np.float32)
        if out.shape != ref.shape:
            raise ExportVerificationError(
                f'{what}: output shape {out.shape} != PyTorch {ref.shape} for input '
                f'{(b, 3, h, w)}; the export did not keep batch/height/width dynamic.'
            )
        diff = float(np.abs(out - ref).max())
        ok = bool(np.all(np.abs(out - ref) <= atol + rtol * np.abs(ref)))
        agree = float((out.argmax(1) == ref.argmax(1)).mean())
        records.append(dict(shape=[b, 3, h, w], max_abs_diff=diff, argmax_agreement=agree))
        if not ok:
            raise ExportVerificationError(
                f'{what}: outputs differ from PyTorch at input {(b, 3, h, w)}: max |diff| '
                f'{diff:.3g} exceeds atol {atol:g} + rtol {rtol:g} * |logit| '
                f'(argmax agreement {100 * agree:.2f}%).'
            )
    return records
