"""``export()``: write a network in one format, its sidecar, and verify it against PyTorch."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from mmengine.config import Config

from uda.export.common import ExportVerificationError, check_out_path, load_segmentor, verify
from uda.export.metadata import build_metadata, sidecar_path, write_sidecar

FORMATS = ('onnx', 'torchscript', 'safetensors')
# |exported - torch| <= ATOL + RTOL * |torch| on logits; safetensors must match exactly.
TOLERANCE = dict(onnx=(1e-4, 1e-4), torchscript=(1e-5, 1e-5), safetensors=(0.0, 0.0))


def export(
    cfg: Config, checkpoint: str, fmt: str, out: str, which: str = 'student'
) -> dict[str, Any]:
    """Export the ``which`` segmentor of ``checkpoint`` to ``out`` and verify it.

    Writes ``out`` and ``out + '.json'`` (classes, palette, normalisation, stride, architecture).
    The export is reloaded from disk (onnxruntime, ``torch.jit.load``, or a network rebuilt
    from safetensors + sidecar) and compared with the PyTorch logits at two input sizes; on a
    mismatch both files are removed and :class:`ExportVerificationError` is raised.

    Returns:
        The sidecar dict, with ``verification`` (per-size max |diff|, tolerance) added.
    """
    if fmt not in FORMATS:
        raise ValueError(f'Unsupported export format {fmt!r}; choose one of {list(FORMATS)}.')
    check_out_path(out)
    net = load_segmentor(cfg, checkpoint, which)
    num_classes = int(getattr(net, 'num_classes', 0)) or _probe_classes(net)
    meta = build_metadata(cfg, num_classes, which, checkpoint, fmt)
    stride = meta['stride']
    if fmt == 'onnx':
        from uda.export.onnx import export_onnx, onnx_runner

        export_onnx(net, out, stride)
        runner = onnx_runner(out)
    elif fmt == 'torchscript':
        from uda.export.torchscript import export_torchscript, torchscript_runner

        export_torchscript(net, out, stride)
        runner = torchscript_runner(out)
    else:
        from uda.export.safetensors_io import load_safetensors, save_safetensors

        save_safetensors(net, out, meta)
        rebuilt = load_safetensors(out, meta)

        def runner(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return rebuilt(torch.from_numpy(x)).numpy()

    write_sidecar(meta, out)
    atol, rtol = TOLERANCE[fmt]
    try:
        records = verify(net, runner, stride, atol, rtol, f'{fmt} export {out}')
    except ExportVerificationError as err:
        for path in (out, sidecar_path(out)):
            if os.path.isfile(path):
                os.remove(path)
        raise ExportVerificationError(
            f'{err} Removed {out} and its sidecar: do not ship this export.'
        ) from err
    meta['verification'] = dict(atol=atol, rtol=rtol, sizes=records)
    write_sidecar(meta, out)
    return meta


def _probe_classes(net: torch.nn.Module) -> int:
    with torch.no_grad():
        return int(net(torch.zeros(1, 3, 64, 64)).shape[1])
