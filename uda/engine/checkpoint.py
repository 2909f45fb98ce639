"""Checkpoint loading that works with torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls
``torch.load`` without the argument, so resuming fails on the logging objects mmengine itself
stores (message hub, history buffers, numpy scalars). We keep the safe loader and allow exactly
those types, rather than unpickling arbitrary code from a checkpoint.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


def _safe_types() -> list[Any]:
    from mmengine.config.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer

    # HistoryBuffer pickles its bound statistics methods as getattr(buffer, 'mean'). The
    # weights-only unpickler still refuses to *call* anything outside this list, so allowing
    # getattr lets it rebuild those references without allowing arbitrary code.
    types: list[Any] = [HistoryBuffer, ConfigDict, np.ndarray, np.dtype, getattr]
    types += [np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType,
              np.dtypes.Int32DType, np.dtypes.BoolDType, np.dtypes.UInt8DType]
    try:  # numpy >= 2 keeps the reconstruction helpers in numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
        types += [_reconstruct, scalar]
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
        types += [_reconstruct, scalar]
    return [t for t in types if t is not None]


def load_checkpoint_file(filename: str, map_location: Optional[Any] = None) -> Any:
    """``torch.load`` with weights_only=True and mmengine's logging types allowed."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint not found: {filename}. Check the path (and '
                                '--resume / load_from in the config).')
    with torch.serialization.safe_globals(_safe_types()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install_checkpoint_loader() -> None:
    """Make mmengine's local-file scheme use :func:`load_checkpoint_file` (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)


install_checkpoint_loader()
