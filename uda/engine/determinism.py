"""The deterministic switch for GPU runs: ``randomness.deterministic=True`` (or ``'warn'``).

A seeded CPU run is already bit-identical from run to run (one thread: ``CPUThreadsHook``).
On a GPU, atomics in some kernels (bilinear upsampling's backward, scatter-add, index-add)
and cuDNN's autotuner make two runs of one seed differ; users of the UDA anchors report 3-6
mIoU between seeds (lhoyer/MIC issues #9, #71). ``randomness.deterministic=True`` makes the
Runner (mmengine ``set_random_seed``) set ``torch.backends.cudnn.deterministic = True``,
``torch.backends.cudnn.benchmark = False`` and ``torch.use_deterministic_algorithms(True)``;
:func:`apply_determinism` adds what mmengine leaves out: ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
(cuBLAS needs it for deterministic matrix products, set before the first CUDA call) and
``env_cfg.cudnn_benchmark=False``. An op without a deterministic kernel then raises; the tools
print it as one ``error:`` line naming the op (:func:`determinism_message`).
``deterministic='warn'`` runs such ops anyway with a warning (``warn_only=True``).
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

import torch

# Deterministic cuBLAS workspaces (CUDA >= 10.2; docs of torch.use_deterministic_algorithms).
CUBLAS_WORKSPACE = ':4096:8'
_NONDETERMINISTIC = re.compile(
    r'^(?P<op>\S+) does not have a deterministic implementation, but you set '
    r"'torch\.use_deterministic_algorithms\(True\)'"
)


def deterministic_mode(cfg: Any) -> Any:
    """``randomness.deterministic`` of a config: False, True or 'warn' (checked)."""
    value = (cfg.get('randomness') or {}).get('deterministic', False)
    if value not in (False, True, 'warn'):
        raise ValueError(
            f'randomness.deterministic={value!r}: use False, True (ops without a deterministic '
            "kernel raise) or 'warn' (they run, with a warning)."
        )
    return value


def apply_determinism(cfg: Any) -> None:
    """Prepare a config whose ``randomness.deterministic`` is set, before the Runner is built.

    Sets ``CUBLAS_WORKSPACE_CONFIG`` (unless the environment gives one) and turns the cuDNN
    autotuner off in ``env_cfg`` (it picks kernels by timing, so by chance).
    """
    if not deterministic_mode(cfg):
        return
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', CUBLAS_WORKSPACE)
    env = cfg.get('env_cfg')
    if isinstance(env, dict) and env.get('cudnn_benchmark'):
        env['cudnn_benchmark'] = False


def after_runner_built(cfg: Any) -> None:
    """``deterministic='warn'``: mmengine turned the switch on with errors; keep it on with
    warnings instead."""
    if deterministic_mode(cfg) == 'warn':
        torch.use_deterministic_algorithms(True, warn_only=True)


def determinism_message(message: str) -> Optional[str]:
    """The tools' message for torch's error about an op without a deterministic kernel, or
    None for any other message."""
    match = _NONDETERMINISTIC.match(message)
    if match is None:
        return None
    op = match.group('op')
    return (
        f'randomness.deterministic=True, but {op} has no deterministic implementation on this '
        "device. Set randomness.deterministic='warn' to run it anyway with a warning (that op "
        'then stays non-deterministic), or False (runs of one seed then differ up to GPU '
        'atomics), or replace the layer that calls it (e.g. bilinear upsampling has no '
        "deterministic CUDA backward: mode='nearest' has)."
    )
