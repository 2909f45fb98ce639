"""safetensors weights + JSON sidecar, from which :func:`load_safetensors` rebuilds the network."""

from __future__ import annotations

import json
from typing import Any, Optional

import torch.nn as nn

from uda.export.metadata import read_sidecar
from uda.registry import MODELS


def save_safetensors(net: nn.Module, path: str, meta: dict[str, Any]) -> None:
    """Write the segmentor's weights; the sidecar is also embedded in the file's header."""
    from safetensors.torch import save_model

    save_model(net, path, metadata={'uda': json.dumps(meta)})


def load_safetensors(path: str, meta: Optional[dict[str, Any]] = None) -> nn.Module:
    """Rebuild the segmentor from the sidecar's ``architecture`` and load the weights strictly.

    Args:
        path: The ``.safetensors`` file.
        meta: The sidecar; read from ``path + '.json'`` when omitted.
    """
    from safetensors.torch import load_model

    meta = meta or read_sidecar(path)
    net = MODELS.build(dict(meta['architecture']))
    missing, unexpected = load_model(net, path, strict=False)
    if missing or unexpected:
        raise ValueError(
            f'{path} does not fit the architecture of its sidecar: missing '
            f'{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}.'
        )
    return net.eval()
