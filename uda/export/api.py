"""``export()``: write a network in one format, its sidecar, and verify it against PyTorch."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from mmengine.config import Config

from uda.export.common import ExportVerificationError, check_out_path, load_segmentor, verify
from uda.export.metadata import build_metadata, sidecar_path, write_sidecar
from uda.export.precision import (
    PRECISIONS,
    calibration_images,
    quantize_int8,
    remove_quietly,
    target_dataset_cfg,
    to_fp16,
    verify_int8,
)

FORMATS = ('onnx', 'torchscript', 'safetensors')
# |exported - torch| <= ATOL + RTOL * |torch| on logits; safetensors must match exactly.
TOLERANCE = dict(onnx=(1e-4, 1e-4), torchscript=(1e-5, 1e-5), safetensors=(0.0, 0.0))
# fp16 ONNX: float16 keeps ~3 significant digits per operation.
FP16_TOLERANCE = (2e-2, 2e-2)
# int8 ONNX: the relative L2 error of the logits on held-out target images.
INT8_MAX_REL_ERROR = 0.25
# Target images that check an int8 export (drawn after the calibration images).
INT8_VERIFY_IMAGES = 2


def export(
    cfg: Config,
    checkpoint: str,
    fmt: str,
    out: str,
    which: str = 'student',
    precision: str = 'fp32',
    calibration: int = 16,
) -> dict[str, Any]:
    """Export the ``which`` segmentor of ``checkpoint`` to ``out`` and verify it.

    ``precision`` (ONNX only, :mod:`uda.export.precision`): ``'fp16'`` is verified like fp32
    at two input sizes with :data:`FP16_TOLERANCE`; ``'int8'`` is calibrated on
    ``calibration`` target images and verified on :data:`INT8_VERIFY_IMAGES` further target
    images (relative L2 error of the logits at most :data:`INT8_MAX_REL_ERROR`) and for its
    output shapes at the two input sizes.

    Writes ``out`` and ``out + '.json'`` (classes, palette, normalisation, stride, architecture).
    The export is reloaded from disk (onnxruntime, ``torch.jit.load``, or a network rebuilt
    from safetensors + sidecar) and compared with the PyTorch logits at two input sizes; on a
    mismatch both files are removed and :class:`ExportVerificationError` is raised.

    Returns:
        The sidecar dict, with ``verification`` (per-size max |diff|, tolerance) added.
    """
    if fmt not in FORMATS:
        raise ValueError(f'Unsupported export format {fmt!r}; choose one of {list(FORMATS)}.')
    if precision not in PRECISIONS:
        raise ValueError(f'Unsupported precision {precision!r}; choose one of {list(PRECISIONS)}.')
    if precision != 'fp32' and fmt != 'onnx':
        raise ValueError(
            f'--precision {precision} is an ONNX export option; use --format onnx (or '
            '--precision fp32).'
        )
    check_out_path(out)
    net = load_segmentor(cfg, checkpoint, which)
    num_classes = int(getattr(net, 'num_classes', 0)) or _probe_classes(net)
    meta = build_metadata(cfg, num_classes, which, checkpoint, fmt)
    stride = meta['stride']
    meta['precision'] = precision
    held_out: list[np.ndarray] = []
    if fmt == 'onnx':
        from uda.export.onnx import export_onnx, onnx_runner

        if precision == 'fp32':
            export_onnx(net, out, stride)
        else:
            fp32 = out + '.fp32.tmp'
            try:
                export_onnx(net, fp32, stride)
                if precision == 'fp16':
                    to_fp16(fp32, out)
                else:
                    images = calibration_images(
                        cfg, calibration + INT8_VERIFY_IMAGES, stride, meta['normalization']
                    )
                    calib = images[:calibration]
                    # Fewer target images than asked for: check on the calibration ones.
                    held_out = images[calibration:] or calib[:INT8_VERIFY_IMAGES]
                    quantize_int8(fp32, out, calib)
                    meta['calibration'] = dict(images=len(calib), set=target_dataset_cfg(cfg)[1])
            finally:
                remove_quietly(fp32)
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
    atol, rtol = FP16_TOLERANCE if precision == 'fp16' else TOLERANCE[fmt]
    what = f'{fmt} {precision} export {out}'
    try:
        if precision == 'int8':
            records = verify(net, runner, stride, float('inf'), 0.0, what)  # shapes only
            records += verify_int8(net, runner, held_out, INT8_MAX_REL_ERROR, what)
        else:
            records = verify(net, runner, stride, atol, rtol, what)
    except ExportVerificationError as err:
        for path in (out, sidecar_path(out)):
            if os.path.isfile(path):
                os.remove(path)
        raise ExportVerificationError(
            f'{err} Removed {out} and its sidecar: do not ship this export.'
        ) from err
    meta['verification'] = dict(atol=atol, rtol=rtol, sizes=records)
    if precision == 'int8':
        meta['verification'] = dict(max_rel_l2_error=INT8_MAX_REL_ERROR, sizes=records)
    write_sidecar(meta, out)
    return meta


def _probe_classes(net: torch.nn.Module) -> int:
    with torch.no_grad():
        return int(net(torch.zeros(1, 3, 64, 64)).shape[1])
