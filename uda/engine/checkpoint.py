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
    types += [
        np.dtypes.Float64DType,
        np.dtypes.Float32DType,
        np.dtypes.Int64DType,
        np.dtypes.Int32DType,
        np.dtypes.BoolDType,
        np.dtypes.UInt8DType,
    ]
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
        raise FileNotFoundError(
            f'Checkpoint not found: {filename}. Check the path (and '
            '--resume / load_from in the config).'
        )
    with torch.serialization.safe_globals(_safe_types()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install_checkpoint_loader() -> None:
    """Make mmengine's local-file scheme use :func:`load_checkpoint_file` (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)


install_checkpoint_loader()


def state_dict_of(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The model weights of an mmengine checkpoint (``state_dict``) or of a bare state dict."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('state_dict'), dict):
        return checkpoint['state_dict']
    if isinstance(checkpoint, dict) and all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        return checkpoint
    raise ValueError('The checkpoint holds no state_dict; give a .pth written by tools/train.py.')


def check_weights_fit(
    expected: dict[str, torch.Tensor],
    given: dict[str, torch.Tensor],
    checkpoint: str,
    config: str = 'the config',
) -> None:
    """Fail with one clear message when checkpoint weights do not fit the built network.

    mmengine loads with ``strict=False`` and only warns on shape mismatches, so a checkpoint of
    another class count or architecture would otherwise be evaluated with random layers.
    """
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f'{k}: checkpoint {list(given[k].shape)} vs model {list(v.shape)}'
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return
    lines = [f'Checkpoint {checkpoint} does not fit the network built from {config}:']
    if shapes:
        lines.append(f'  {len(shapes)} shape mismatches, e.g. ' + '; '.join(shapes[:3]))
    if missing:
        lines.append(f'  {len(missing)} weights missing from the checkpoint, e.g. {missing[:3]}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected weights, e.g. {unexpected[:3]}')
    lines.append(
        '  The checkpoint was trained with another class count or architecture: use '
        'the config it was trained with (model.segmentor: num_classes, arch, '
        'encoder_name).'
    )
    raise ValueError('\n'.join(lines))


def segmentor_weights(
    state: dict[str, torch.Tensor], which: str, checkpoint: str
) -> dict[str, torch.Tensor]:
    """The weights of the ``which`` network ('student' / 'teacher') without their prefix."""
    prefix = 'teacher.net.' if which == 'teacher' else f'{which}.'
    out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        held = sorted({k.split('.', 1)[0] for k in state})
        raise KeyError(
            f"Checkpoint {checkpoint} has no '{which}' weights ({prefix}*); it holds "
            f'{held}. Choose one of those (e.g. --which student).'
        )
    return out


def load_segmentor_weights(
    net: torch.nn.Module, checkpoint: str, which: str = 'student', config: str = 'the config'
) -> None:
    """Load the ``which`` network of a training checkpoint into ``net``, strictly.

    The one loader for tools that run a single network (``tools/compute_is_weights.py``,
    ``uda.export.common.load_segmentor``): :func:`check_weights_fit` first, so a checkpoint of
    another class count or architecture fails with one message instead of leaving random layers
    (mmengine's ``load_checkpoint(strict=False)`` only warns).

    Args:
        net: The segmentor to fill (``model.segmentor_for(which)`` or a bare segmentor).
        checkpoint: ``.pth`` written by ``tools/train.py``.
        which: ``'student'`` or ``'teacher'``: the key prefix in the checkpoint.
        config: Config path, named in the error.
    """
    weights = segmentor_weights(
        state_dict_of(load_checkpoint_file(checkpoint, 'cpu')), which, checkpoint
    )
    check_weights_fit(net.state_dict(), weights, checkpoint, config)
    net.load_state_dict(weights, strict=True)


# Terms that ran before the others in the positional layout (their old `order`); AdaptiveBN
# (order 100) held no state and is gone (bn_policy='target_only').
_LEGACY_ORDER = {'SACSelfTraining': -10}


def upgrade_state_dict(
    state: dict[str, torch.Tensor],
    terms: dict[str, dict],
    labellers: Optional[dict[str, dict]] = None,
) -> dict[str, torch.Tensor]:
    """Map a checkpoint of the positional layout (before named terms) to the current one.

    The key mapping:

    - ``terms.<i>.*`` -> ``terms.<name>.*``: position ``i`` in the old list, which ran the
      terms sorted by their ``order`` (SACSelfTraining first, then the others in config order;
      AdaptiveBN, stateless, last), matched to the names of ``terms`` in that order;
    - ``terms.<i>.class_prior`` / ``prior_updates`` of SACSelfTraining ->
      ``labellers.<labeller>.*`` (the term's ``labeller``, 'sac' by default);
    - ``teacher.<key>`` -> ``teacher.net.<key>``, ``teacher_ready`` -> ``teacher.ready``;
    - ``student.aux_head.*`` -> ``student.heads.aux.*`` and
      ``student.net.classification_head.*`` -> ``student.heads.cls.*`` (the segmentor's named
      heads).

    Args:
        state: The old ``state_dict``.
        terms: The new config's ``model.terms`` (name -> config).
        labellers: The new config's ``model.labellers`` (unused but checked for the SAC name).
    """
    named = [n for n, c in terms.items() if c.get('type') != 'AdaptiveBN']
    old_order = sorted(named, key=lambda n: _LEGACY_ORDER.get(str(terms[n].get('type')), 0))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        head, _, rest = key.partition('.')
        if head == 'terms' and rest.split('.', 1)[0].isdigit():
            index, _, tail = rest.partition('.')
            if int(index) >= len(old_order):
                raise KeyError(
                    f'Checkpoint key {key}: the config has only {len(old_order)} '
                    'stateful terms; upgrade with the config the run was trained '
                    'with.'
                )
            name = old_order[int(index)]
            if terms[name].get('type') == 'SACSelfTraining' and tail.split('.')[0] in (
                'class_prior',
                'prior_updates',
            ):
                lab = terms[name].get('labeller', 'sac')
                if labellers is not None and lab not in labellers:
                    raise KeyError(f"model.labellers has no '{lab}' for the SAC class prior.")
                new = f'labellers.{lab}.{tail}'
            else:
                new = f'terms.{name}.{tail}'
        elif key == 'teacher_ready':
            new = 'teacher.ready'
        elif head == 'teacher' and not rest.startswith(('net.', 'ready', 'updates')):
            new = f'teacher.net.{rest}'
        for net in ('student.', 'teacher.net.'):
            if new.startswith(net + 'aux_head.'):
                new = net + 'heads.aux.' + new[len(net + 'aux_head.') :]
            elif new.startswith(net + 'net.classification_head.'):
                new = net + 'heads.cls.' + new[len(net + 'net.classification_head.') :]
        out[new] = value
    if 'teacher.ready' in out and 'teacher.updates' not in out:
        out['teacher.updates'] = torch.zeros((), dtype=torch.long)
    return out
