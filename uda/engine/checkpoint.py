"""Checkpoint loading that works with torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls
``torch.load`` without the argument, so resuming fails on the logging objects mmengine itself
stores (message hub, history buffers, numpy scalars). We keep the safe loader and allow exactly
those types, rather than unpickling arbitrary code from a checkpoint.
"""

from __future__ import annotations

import errno
import os
import os.path as osp
import pickle
import re
import shutil
import zipfile
from typing import Any, Optional

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: truncated, corrupt, or holding foreign objects."""


_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


def refuse_url(path: Any, what: str) -> None:
    """Fail when ``path`` is a URL (``https://``, ``s3://``, ``open-mmlab://`` ...).

    A config is Python and runs when loaded; a checkpoint is unpickled (with the allow-list of
    :func:`load_checkpoint_file`, but mmengine's own ``http`` loader bypasses it). The tools
    therefore read both only from local files that the user fetched and checked.
    """
    if isinstance(path, str) and _URL.match(path):
        raise ValueError(
            f'{what} {path} is a URL; the tools load configs and checkpoints only from local '
            'files (a config is Python code that runs when it is loaded, a checkpoint is '
            'unpickled). Download it yourself from a source you trust and give the local path.'
        )


# The statistics methods HistoryBuffer (mmengine's logging buffer, in every checkpoint's
# message hub) pickles with its state; pickle protocol 2 writes them as getattr(HistoryBuffer,
# name). Custom statistics registered by other code are not used by uda.
_HISTORY_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_statistic(owner: Any, name: Any) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling: resolves HistoryBuffer's own
    statistics methods and nothing else, so a crafted file cannot reach other attributes
    (``getattr(builtins, 'eval')``, ``getattr(f, '__globals__')``)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if owner is HistoryBuffer and name in _HISTORY_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refused getattr({owner!r}, {name!r}): a checkpoint written by tools/train.py only '
        f'names HistoryBuffer.{{{", ".join(_HISTORY_STATISTICS)}}} this way'
    )


def _safe_types() -> list[Any]:
    """What the weights-only unpickler may build beyond tensors and plain containers.

    Exactly what the checkpoints of every method family hold (checked by
    ``tests/engine/test_checkpoint_safety.py``): mmengine's message hub (HistoryBuffer, numpy
    arrays and scalars of logged values, their dtypes). ``getattr`` is replaced by
    :func:`_history_buffer_statistic`; nothing here returns an arbitrary callable.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    types: list[Any] = [HistoryBuffer, np.ndarray, np.dtype]
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
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
    types += [_reconstruct, scalar, (_history_buffer_statistic, 'builtins.getattr')]
    return types


def _zip_problem(filename: str) -> Optional[str]:
    """Why ``filename`` is not a complete torch zip checkpoint, or None when it is one.

    torch.save writes a zip archive whose directory is at the end, so a file cut short by a
    crash or an interrupted copy has none; a damaged member fails its CRC.
    """
    try:
        with zipfile.ZipFile(filename) as archive:
            bad = archive.testzip()
            if bad is not None:
                return f'member {bad} fails its CRC check'
            if not any(n.endswith('data.pkl') for n in archive.namelist()):
                return 'a zip archive without data.pkl'
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        size = osp.getsize(filename)
        return f'not a complete zip archive ({size} bytes; {err})'
    return None


def load_checkpoint_file(filename: str, map_location: Optional[Any] = None) -> Any:
    """``torch.load`` with weights_only=True and mmengine's logging types allowed.

    The one loader of every entry point (``--resume``, ``load_from``, ``tools/test.py``,
    ``tools/export.py``, ``tools/infer.py``; mmengine's through
    :func:`install_checkpoint_loader`), so a bad file gets one error naming it and the fix
    instead of torch's ``PytorchStreamReader failed reading zip archive``.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        CheckpointError: The file is truncated or corrupt, or holds objects outside the
            allow-list (:func:`_safe_types`); nothing in it was run.
    """
    refuse_url(filename, 'Checkpoint')
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'Checkpoint not found: {filename}. Check the path (and '
            '--resume / load_from in the config).'
        )
    try:
        with torch.serialization.safe_globals(_safe_types()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' not in str(err):
            why = _zip_problem(filename) or str(err)
            raise CheckpointError(_truncated_message(filename, why)) from None
        reason = next(
            (ln.strip() for ln in str(err).splitlines() if 'GLOBAL' in ln or 'refused' in ln),
            str(err).splitlines()[-1].strip() if str(err).strip() else '',
        )
        raise CheckpointError(
            f'Checkpoint {filename} holds objects that checkpoints written by tools/train.py '
            f'never hold ({reason}), so it was not loaded and nothing in it was run. Use a '
            '.pth written by tools/train.py; for weights from elsewhere, save only their '
            'tensors (torch.save(model.state_dict(), path)) with code you trust.'
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile):
        problem = _zip_problem(filename)
        if problem is None:  # a complete archive: another problem (e.g. map_location)
            raise
        # from None: torch's 'PytorchStreamReader failed ...' would only repeat it, unnamed
        raise CheckpointError(_truncated_message(filename, problem)) from None


def _truncated_message(filename: str, problem: str) -> str:
    return (
        f'Checkpoint {filename} is truncated or not a checkpoint written by tools/train.py '
        f'({problem}). If a run was killed while saving it, delete it and resume from the '
        f'previous one (tools/train.py CONFIG --resume {osp.dirname(filename) or "."}/iter_N.pth '
        'with the N before); if it was downloaded or copied, fetch it again.'
    )


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(fd)


def commit_file(tmp_path: str, path: str) -> None:
    """Flush ``tmp_path`` to disk, then rename it to ``path`` in one step (``os.replace``).

    A reader (``--resume``) sees either the old ``path`` or the complete new one, never a
    partial file, even after a crash or a power loss between the two calls.
    """
    with open(tmp_path, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, path)
    _fsync_dir(osp.dirname(osp.abspath(path)))


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and :func:`commit_file`; a failed
    write leaves ``path`` as it was and no temporary file behind."""
    tmp_path = f'{path}.tmp'
    try:
        with open(tmp_path, 'w') as f:
            f.write(text)
        commit_file(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (full or read-only disk, quota): the message names
    the folder, its free space and the checkpoint that is still valid."""


# Errors of the disk, not of the checkpoint: the save can succeed once there is room.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}


def _size(nbytes: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if nbytes < 1024 or unit == 'TiB':
            return f'{nbytes:.1f} {unit}' if unit != 'B' else f'{int(nbytes)} B'
        nbytes /= 1024
    return f'{nbytes:.1f} TiB'  # pragma: no cover


def save_failure(err: OSError, path: str, previous: Optional[str]) -> CheckpointSaveError:
    """The error to raise when writing checkpoint ``path`` failed with ``err``.

    Names the folder, its free space (``shutil.disk_usage``), the cause, and the checkpoint
    that ``last_checkpoint`` still names, so the user knows that ``--resume`` works once there
    is room.
    """
    folder = osp.dirname(osp.abspath(path))
    try:
        usage = shutil.disk_usage(folder)
        space = f'{_size(usage.free)} free of {_size(usage.total)}'
    except OSError:
        space = 'free space unknown'
    cause = os.strerror(err.errno) if err.errno else str(err)
    kept = (
        f'The previous checkpoint {previous} and last_checkpoint are unchanged: free space (or '
        'make the folder writable) and continue with tools/train.py CONFIG --resume.'
        if previous
        else 'No earlier checkpoint was written; free space (or make the folder writable) and '
        'start again.'
    )
    return CheckpointSaveError(
        err.errno or errno.EIO,
        f'Cannot write checkpoint {osp.basename(path)} to {folder} ({cause}; {space}). {kept}',
    )


def load_any_checkpoint(filename: str, map_location: Optional[Any] = None) -> Any:
    """:func:`load_checkpoint_file`, with a foreign file (da-sac, ADVENT, DAFormer ...)
    converted to uda's layout in memory (:func:`uda.models.layouts.as_uda_checkpoint`)."""
    from uda.models.layouts import as_uda_checkpoint

    return as_uda_checkpoint(load_checkpoint_file(filename, map_location), filename)


def install_checkpoint_loader() -> None:
    """Make mmengine's local-file scheme use :func:`load_any_checkpoint` (idempotent), so
    ``load_from`` accepts the authors' released files too."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_any_checkpoint, force=True)


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
        state_dict_of(load_any_checkpoint(checkpoint, 'cpu')), which, checkpoint
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
