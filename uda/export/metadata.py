"""The JSON sidecar of an exported network: what a user needs to run it without uda's config.

Normalisation is NOT baked into the exported graph: inputs are RGB float32 [B, 3, H, W] with
``(pixel - mean) / std`` applied per channel (0-255 units), H and W padded to a multiple of
``stride``; outputs are logits [B, C, H, W]. Keeping the graph a pure network keeps the ONNX /
TorchScript outputs comparable to the PyTorch segmentor at export time.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mmengine.config import Config, ConfigDict

from uda.data.classes import get_protocol
from uda.models.segmentor import architecture_only

SIDECAR_VERSION = 1


def sidecar_path(path: str) -> str:
    """``model.onnx`` -> ``model.onnx.json`` (one sidecar per exported file, never shared)."""
    return f'{path}.json'


def _plain(obj: Any) -> Any:
    if isinstance(obj, (dict, ConfigDict)):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def palette_for(num_classes: int) -> list[list[int]]:
    """A fixed, distinct-enough colour per class when no protocol names the classes."""
    return [
        [(37 * i + 80) % 256, (91 * i + 40) % 256, (163 * i + 120) % 256]
        for i in range(num_classes)
    ]


def build_metadata(
    cfg: Config, num_classes: int, which: str, checkpoint: str, fmt: str
) -> dict[str, Any]:
    """Classes, palette, normalisation, stride and architecture of a config's segmentor."""
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    evaluator = cfg.get('test_evaluator') or cfg.get('val_evaluator') or {}
    protocol_name = (
        evaluator.get('protocol', 'cityscapes19') if isinstance(evaluator, dict) else 'cityscapes19'
    )
    protocol = get_protocol(protocol_name)
    if protocol.num_classes == num_classes:
        classes, palette = list(protocol.classes), [list(c) for c in protocol.palette]
    else:  # a user's own label space without a protocol file
        protocol_name = None
        classes, palette = [f'class_{i}' for i in range(num_classes)], palette_for(num_classes)
    return dict(
        uda_sidecar_version=SIDECAR_VERSION,
        format=fmt,
        network=which,
        source_checkpoint=os.path.abspath(checkpoint),
        architecture=_plain(architecture_only(cfg.model.segmentor)),
        num_classes=num_classes,
        protocol=protocol_name,
        classes=classes,
        palette=palette,
        normalization=dict(
            mean=list(pre.get('mean', (123.675, 116.28, 103.53))),
            std=list(pre.get('std', (58.395, 57.12, 57.375))),
            # The network's channel order (BGR: the Caffe-ported DeepLab-v2 of ADVENT and
            # AdaptSegNet, converted by tools/convert_checkpoint.py); mean/std are in it.
            color_order=str(pre.get('channel_order', 'rgb')).upper(),
            baked_in=False,
            formula='input = (pixel - mean) / std per channel, pixel in 0..255',
        ),
        stride=int(pre.get('size_divisor', 32)),
        input=dict(
            name='input',
            layout='NCHW',
            dtype='float32',
            note='height and width padded (bottom/right, zeros after normalisation) '
            'to a multiple of stride; crop the logits back',
        ),
        output=dict(name='logits', layout='NCHW', dtype='float32', note='argmax over C'),
    )


def write_sidecar(meta: dict[str, Any], path: str) -> str:
    """Write the sidecar of ``path``; returns its file name."""
    out = sidecar_path(path)
    with open(out, 'w') as f:
        json.dump(meta, f, indent=2)
    return out


def read_sidecar(path: str) -> dict[str, Any]:
    """The sidecar of an exported file (``path`` + ``.json``), with a clear error if absent."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        raise FileNotFoundError(
            f'No sidecar {side} next to {path}: it holds classes, '
            'normalisation and stride. Re-export with tools/export.py.'
        )
    with open(side) as f:
        meta = json.load(f)
    missing = [
        k
        for k in ('architecture', 'classes', 'palette', 'normalization', 'stride')
        if k not in meta
    ]
    if missing:
        raise KeyError(f'Sidecar {side} lacks {missing}; re-export with tools/export.py.')
    return meta
