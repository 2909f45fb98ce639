"""Checkpoint layouts of other code bases, and their conversion to uda's segmentor.

A user who owns the authors' released models (da-sac ``final_e136.pth``, ADVENT's
``gta2cityscapes_advent.pth``, DAFormer's ``latest.pth`` ...) wants to evaluate them with uda or
to warm-start from them. Each such file has its own key names, container keys, teacher copy and
preprocessing. A :class:`CheckpointLayout` names one of them: where it comes from
(``repository`` and ``source_file``), how to recognise it (:meth:`~CheckpointLayout.matches`)
and how to turn it into a :class:`ConvertedCheckpoint` (:meth:`~CheckpointLayout.convert`):
the state dict of uda's :class:`~uda.models.SMPSegmentor`, the teacher's where the file has one,
the segmentor config the keys fit, and the reference preprocessing.

:func:`load_foreign_checkpoint` converts a file and then checks that every weight of the built
network came from the file and every weight of the file went somewhere; anything less is a
:class:`ForeignCheckpointError` naming the layout and example keys, never a silently random layer
(``load_state_dict(strict=False)``, as the references load them, hides exactly that).
"""

from __future__ import annotations

import abc
import copy
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, Sequence, Union

import torch
from torch import Tensor

from uda.registry import CHECKPOINT_LAYOUTS

StateDict = dict[str, Tensor]

# BatchNorm step counters: files written before torch 0.4 lack them, and they never change an
# output; a missing one is filled with 0 instead of counting against coverage.
_BN_COUNTER = 'num_batches_tracked'


class ForeignCheckpointError(ValueError):
    """A checkpoint that no layout reads, or whose conversion does not cover the network."""


@dataclass(frozen=True)
class Preprocessing:
    """How the reference code turns an RGB uint8 image into the network input.

    ``input = (image_in_channel_order * value_range / 255 - mean) / std`` per channel, with
    ``mean`` and ``std`` in the reference's own units (``value_range`` 1.0: images in [0, 1];
    255.0: images in 0-255) and in ``channel_order``.

    Args:
        channel_order: ``'rgb'`` or ``'bgr'`` (Caffe models: ADVENT, AdaptSegNet).
        value_range: 1.0 or 255.0: the scale of the pixel values the reference normalises.
        mean: Per-channel mean in reference units and channel order.
        std: Per-channel std in reference units and channel order (1.0: no division).
        size_divisor: Padding multiple of the reference's evaluation, where it differs from the
            config's (1: the image is fed unpadded; padding moves the border logits).
    """

    channel_order: str
    value_range: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size_divisor: Optional[int] = None

    def __post_init__(self) -> None:
        if self.channel_order not in ('rgb', 'bgr'):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}.")
        if self.value_range not in (1.0, 255.0):
            raise ValueError(f'value_range must be 1.0 or 255.0, got {self.value_range}.')

    def data_preprocessor(self) -> dict[str, Any]:
        """The :class:`~uda.models.SegDataPreprocessor` settings (0-255 units) that give the
        same network input."""
        scale = 255.0 / self.value_range
        out: dict[str, Any] = dict(
            mean=[float(m) * scale for m in self.mean],
            std=[float(s) * scale for s in self.std],
            channel_order=self.channel_order,
        )
        if self.size_divisor is not None:
            out['size_divisor'] = int(self.size_divisor)
        return out

    def describe(self) -> str:
        """One line for reports and docs."""
        units = '[0, 1]' if self.value_range == 1.0 else '0-255'
        std = 'no std' if all(s == 1.0 for s in self.std) else f'std {list(self.std)}'
        return f'{self.channel_order.upper()} {units}, mean {list(self.mean)}, {std}'


@dataclass
class ConvertedCheckpoint:
    """A foreign checkpoint in uda's terms.

    Args:
        layout: Name of the layout that converted it.
        state_dict: Weights of uda's segmentor (``SMPSegmentor.state_dict()`` keys, e.g.
            ``net.encoder.conv1.weight``); the student where the file has several networks.
        segmentor: The segmentor config (``dict(type='SMPSegmentor', ...)``) those keys fit:
            architecture, encoder, class count (read from the weight shapes), heads.
        preprocessing: The reference's input normalisation.
        teacher_state_dict: The momentum teacher's weights (same keys), where the file has one.
        meta: Facts about the file (epoch, score, the reference's own meta).
        ignored: File keys deliberately left out (optimiser state, the references' own
            bookkeeping), with no weight of the network.
        unmapped: File weights that the layout could not place; they count as unexpected.
    """

    layout: str
    state_dict: StateDict
    segmentor: dict[str, Any]
    preprocessing: Preprocessing
    teacher_state_dict: Optional[StateDict] = None
    meta: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)

    @property
    def data_preprocessor(self) -> dict[str, Any]:
        """:class:`~uda.models.SegDataPreprocessor` settings of the reference preprocessing."""
        return self.preprocessing.data_preprocessor()

    def foreign_meta(self, source: str = '') -> dict[str, Any]:
        """What a uda checkpoint records of its origin (``meta['foreign']``), plain types only,
        so tools rebuild the reference network and preprocessing from the file alone."""
        layout = CHECKPOINT_LAYOUTS.get(self.layout)
        return dict(
            layout=self.layout,
            repository=getattr(layout, 'repository', ''),
            source_file=getattr(layout, 'source_file', ''),
            file=source,
            segmentor=copy.deepcopy(self.segmentor),
            data_preprocessor=self.data_preprocessor,
            preprocessing=self.preprocessing.describe(),
            has_teacher=self.teacher_state_dict is not None,
            meta=_plain(self.meta),
        )

    def uda_checkpoint(self, source: str = '') -> dict[str, Any]:
        """The checkpoint ``tools/train.py`` would have written for these weights: ``student.*``
        and ``teacher.net.*`` keys under ``state_dict``, the origin under ``meta['foreign']``."""
        state = {f'student.{k}': v for k, v in self.state_dict.items()}
        if self.teacher_state_dict is not None:
            state.update({f'teacher.net.{k}': v for k, v in self.teacher_state_dict.items()})
        return dict(meta=dict(foreign=self.foreign_meta(source)), state_dict=state)


class CheckpointLayout(abc.ABC):
    """One published checkpoint layout. Subclasses register in ``CHECKPOINT_LAYOUTS`` under
    their class name, which is also the ``--layout`` name (case-insensitive).

    Class attributes:
        repository: Source repository (``owner/name``).
        source_file: The reference file (and lines) that writes or reads the layout.
        files: The released file names in this layout.
    """

    repository: ClassVar[str] = ''
    source_file: ClassVar[str] = ''
    files: ClassVar[str] = ''

    @property
    def name(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def matches(self, ckpt: Any) -> bool:
        """Whether a loaded file (``torch.load`` result) is in this layout (for ``auto``)."""

    @abc.abstractmethod
    def convert(self, ckpt: Any) -> ConvertedCheckpoint:
        """The file in uda's terms; raises :class:`ForeignCheckpointError` when it cannot."""


def _plain(obj: Any) -> Any:
    """Plain Python values only (tensors and numpy scalars to numbers), for a weights-only
    loadable checkpoint meta."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if hasattr(obj, 'item') and callable(obj.item):  # numpy scalars
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def tensor_items(obj: Any) -> StateDict:
    """The tensor entries of a dict (a state dict may sit next to counters and strings)."""
    if not isinstance(obj, dict):
        return {}
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}


def with_prefix(state: StateDict, prefix: str) -> StateDict:
    """Entries whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def rename(state: StateDict, rules: Sequence[tuple[str, str]]) -> tuple[StateDict, list[str]]:
    """Apply the first matching ``(regex, replacement)`` rule to each key.

    Returns:
        The renamed entries and the keys that no rule matched.
    """
    out: StateDict = {}
    unmapped: list[str] = []
    compiled = [(re.compile(p), r) for p, r in rules]
    for key, value in state.items():
        for pattern, repl in compiled:
            if pattern.match(key):
                out[pattern.sub(repl, key, count=1)] = value
                break
        else:
            unmapped.append(key)
    return out, unmapped


def get_layout(name: str) -> CheckpointLayout:
    """The registered layout called ``name`` (class name, any case), or an error listing them."""
    names = layout_names()
    match = next((n for n in names if n.lower() == name.lower()), None)
    if match is None:
        raise ForeignCheckpointError(
            f'Unknown checkpoint layout {name!r}; uda reads {", ".join(names)} (or auto). '
            'A new layout is a CheckpointLayout subclass registered in CHECKPOINT_LAYOUTS '
            '(uda/models/layouts/).'
        )
    cls: type[CheckpointLayout] = CHECKPOINT_LAYOUTS.module_dict[match]
    return cls()


def layout_names() -> list[str]:
    """Registered layout names, sorted."""
    CHECKPOINT_LAYOUTS.import_from_location()
    return sorted(CHECKPOINT_LAYOUTS.module_dict)


def is_uda_checkpoint(ckpt: Any) -> bool:
    """A file written by ``tools/train.py`` / ``tools/convert_checkpoint.py`` (or a bare
    segmentor / adapter state dict of uda), which needs no conversion."""
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    keys = tensor_items(state)
    return bool(keys) and any(k.startswith(('student.', 'teacher.net.', 'net.')) for k in keys)


def detect_layout(ckpt: Any, source: str = 'the checkpoint') -> CheckpointLayout:
    """The one registered layout that matches ``ckpt``; an error when none or several do."""
    found = [get_layout(n) for n in layout_names()]
    found = [lay for lay in found if lay.matches(ckpt)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ForeignCheckpointError(
            f'{source}: no checkpoint layout matches it ({describe_keys(ckpt)}). uda reads '
            f'{", ".join(layout_names())}; name one with --layout, or see '
            'docs/converting_checkpoints.md.'
        )
    names = [lay.name for lay in found]
    raise ForeignCheckpointError(
        f'{source}: its keys fit several layouts ({", ".join(names)}) that give different '
        f'outputs from the same weights; name one: tools/convert_checkpoint.py {source} OUT.pth '
        f'--layout {"|".join(n.lower() for n in names)} (or --layout in tools/test.py / '
        'infer.py / export.py).'
    )


def describe_keys(ckpt: Any, n: int = 4) -> str:
    """A short description of a loaded file's keys for error messages."""
    if not isinstance(ckpt, dict):
        return f'a {type(ckpt).__name__}, not a dict'
    keys = list(ckpt)
    text = f'top-level keys {keys[:n]}'
    for container in ('state_dict', 'model'):
        inner = ckpt.get(container)
        if isinstance(inner, dict):
            text += f', {container} keys e.g. {list(inner)[:n]}'
    return text


@dataclass
class ForeignLoadReport:
    """What a conversion loaded: counts over the built segmentor's state dict."""

    layout: str
    source: str
    loaded: int
    missing: list[str]
    unexpected: list[str]
    shape_mismatches: list[str]
    teacher: bool

    def line(self) -> str:
        teacher = ' + teacher' if self.teacher else ''
        return (
            f'{self.source}: {self.layout} checkpoint converted{teacher}: {self.loaded} loaded, '
            f'{len(self.missing)} missing, {len(self.unexpected)} unexpected'
        )


def check_coverage(conv: ConvertedCheckpoint, source: str) -> ForeignLoadReport:
    """Build ``conv.segmentor`` (no memory: on the meta device) and compare keys and shapes.

    Raises:
        ForeignCheckpointError: Any weight missing, unexpected or of another shape, in the
            student or the teacher, naming the layout and example keys.
    """
    from mmengine.registry import DefaultScope

    from uda.registry import MODELS

    with DefaultScope.overwrite_default_scope('uda'), torch.device('meta'):
        net = MODELS.build(copy.deepcopy(conv.segmentor))
    expected = {k: v.shape for k, v in net.state_dict().items()}
    problems: list[str] = []
    report: Optional[ForeignLoadReport] = None
    nets = [('student', conv.state_dict)]
    if conv.teacher_state_dict is not None:
        nets.append(('teacher', conv.teacher_state_dict))
    for which, state in nets:
        for key in expected:  # pre-0.4 files have no BN step counters
            if key.endswith(_BN_COUNTER) and key not in state:
                state[key] = torch.zeros((), dtype=torch.long)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if which == 'student':
            unexpected += list(conv.unmapped)
        shapes = [
            f'{k}: file {list(v.shape)} vs network {list(expected[k])}'
            for k, v in state.items()
            if k in expected and tuple(v.shape) != tuple(expected[k])
        ]
        if which == 'student':
            report = ForeignLoadReport(
                conv.layout,
                source,
                len(set(state) & set(expected)) - len(shapes),
                missing,
                unexpected,
                shapes,
                conv.teacher_state_dict is not None,
            )
        if missing:
            problems.append(
                f'{which}: {len(missing)} network weights not in the file, e.g. {missing[:3]}'
            )
        if unexpected:
            problems.append(
                f'{which}: {len(unexpected)} file weights with no place in the '
                f'network, e.g. {unexpected[:3]}'
            )
        if shapes:
            problems.append(f'{which}: {len(shapes)} shape mismatches, e.g. {shapes[:2]}')
    assert report is not None
    if problems:
        raise ForeignCheckpointError(
            f'{source}: the {conv.layout} layout does not cover the file fully (network '
            f'{conv.segmentor.get("arch")}/{conv.segmentor.get("encoder_name")}, '
            f'{conv.segmentor.get("num_classes")} classes):\n  ' + '\n  '.join(problems) + '\n  '
            'The file is not (only) in this layout: check --layout, or that it is the '
            "authors' released file; docs/converting_checkpoints.md lists what each layout reads."
        )
    return report


def convert_checkpoint(
    ckpt: Any, layout: str = 'auto', source: str = 'the checkpoint'
) -> tuple[ConvertedCheckpoint, ForeignLoadReport]:
    """Convert a loaded foreign file and check that it covers the network fully."""
    lay = detect_layout(ckpt, source) if layout == 'auto' else get_layout(layout)
    if layout != 'auto' and not lay.matches(ckpt):
        raise ForeignCheckpointError(
            f'{source} is not in the {lay.name} layout ({lay.repository} {lay.source_file}): '
            f'{describe_keys(ckpt)}. Try --layout auto.'
        )
    conv = lay.convert(ckpt)
    return conv, check_coverage(conv, source)


def load_foreign_checkpoint(
    path: Union[str, os.PathLike], layout: str = 'auto'
) -> tuple[ConvertedCheckpoint, str]:
    """Read a foreign file (weights only, nothing in it is run) and convert it.

    Args:
        path: The released checkpoint.
        layout: A registered layout name, or ``'auto'`` (the one whose ``matches`` is true).

    Returns:
        The converted checkpoint and a one-line report (layout, loaded / missing / unexpected).

    Raises:
        ForeignCheckpointError: No layout (or several) matches, or coverage is below full.
    """
    from uda.engine.checkpoint import load_checkpoint_file

    source = osp.expanduser(str(path))
    conv, report = convert_checkpoint(load_checkpoint_file(source, 'cpu'), layout, source)
    return conv, report.line()


# The last in-memory conversion, so that a tool which reads the file itself and then hands the
# path to mmengine (``load_from``) converts and reports once.
_LAST: dict[str, Any] = {}


def _file_id(source: str) -> tuple[str, float, int]:
    st = os.stat(source)
    return osp.abspath(source), st.st_mtime, st.st_size


def as_uda_checkpoint(ckpt: Any, source: str, layout: str = 'auto') -> Any:
    """``ckpt`` itself when it is uda's, else its conversion (logged in one report line).

    The loader of every entry point (``load_from``, ``tools/test.py``, ``tools/infer.py``,
    ``tools/export.py``): a foreign file is detected, converted in memory and checked for full
    coverage; its origin lands in ``meta['foreign']`` (:func:`foreign_meta`).

    Args:
        ckpt: The loaded file.
        source: Its path (for messages, and to reuse the last conversion of the same file).
        layout: ``'auto'`` or a registered layout name.
    """
    if layout == 'auto' and is_uda_checkpoint(ckpt):
        return ckpt
    from mmengine.logging import print_log

    try:
        fid: Optional[tuple[str, float, int]] = _file_id(source)
    except OSError:
        fid = None
    if fid is not None and _LAST.get('id') == fid and layout in ('auto', _LAST['layout']):
        return _LAST['checkpoint']
    conv, report = convert_checkpoint(ckpt, layout, source)
    print_log(report.line(), logger='current')
    out = conv.uda_checkpoint(source)
    if fid is not None:
        _LAST.update(id=fid, layout=conv.layout, checkpoint=out)
    return out


def foreign_meta(ckpt: Any) -> Optional[dict[str, Any]]:
    """``meta['foreign']`` of a converted checkpoint, or None for uda's own."""
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    foreign = meta.get('foreign') if isinstance(meta, dict) else None
    return foreign if isinstance(foreign, dict) else None


def apply_foreign_config(cfg: Any, foreign: dict[str, Any]) -> str:
    """Make ``cfg`` build the reference network and preprocessing of a converted checkpoint.

    ``model.segmentor`` becomes the recorded segmentor (the keys fit only that network) and
    ``model.data_preprocessor`` takes the recorded mean / std / channel order (its padding
    stays), so evaluation sees the authors' input. Returns a line saying what changed.
    """
    model = cfg['model']
    if 'segmentor' in model:
        model['segmentor'] = copy.deepcopy(foreign['segmentor'])
    else:  # a config whose model is the segmentor itself
        cfg['model'] = dict(
            copy.deepcopy(foreign['segmentor']),
            **{k: v for k, v in model.items() if k == 'data_preprocessor'},
        )
        model = cfg['model']
    pre = dict(model.get('data_preprocessor') or cfg.get('data_preprocessor') or {})
    pre.setdefault('type', 'SegDataPreprocessor')
    pre.update(foreign['data_preprocessor'])
    model['data_preprocessor'] = pre
    seg = foreign['segmentor']
    return (
        f'network and preprocessing of the {foreign["layout"]} checkpoint: '
        f'{seg.get("arch")}/{seg.get("encoder_name")}, {seg.get("num_classes")} classes; '
        f'input {foreign["preprocessing"]}'
    )


def read_checkpoint(path: str, layout: str = 'auto') -> Any:
    """Load a checkpoint file (weights only) as uda's: converted in memory when foreign."""
    from uda.engine.checkpoint import load_checkpoint_file

    return as_uda_checkpoint(load_checkpoint_file(path, 'cpu'), path, layout)


# Segmentor keys that change a converted network's outputs, and the preprocessing keys.
_ARCH_KEYS = (
    'arch',
    'encoder_name',
    'num_classes',
    'encoder_style',
    'summed_branches',
    'rates',
    'align_corners',
)
_PRE_KEYS = ('mean', 'std', 'channel_order')
_DEFAULTS = dict(
    encoder_style='torchvision',
    summed_branches=None,
    rates=(6, 12, 18, 24),
    align_corners=False,
    channel_order='rgb',
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) < 1e-6
    return bool(a == b)


def check_load_from(cfg: Any) -> None:
    """A warm start (``load_from``) from a foreign or converted file must build its network.

    The weights of the Caffe-style DeepLab-v2 also load into smp's torchvision ResNet (same
    names), and BGR-trained weights run on RGB input without any error: both silently give
    other outputs than the authors'. So the config's segmentor and preprocessing must be those
    recorded by the conversion, or this fails naming the keys to set.
    """
    path = cfg.get('load_from')
    if not path or cfg.get('resume'):
        return
    foreign = foreign_meta(read_checkpoint(path))
    if foreign is None:
        return
    model = cfg['model']
    seg = model.get('segmentor', model)
    pre = model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    wrong = []
    for where, have, want, keys in (
        ('model.segmentor', seg, foreign['segmentor'], _ARCH_KEYS),
        ('model.data_preprocessor', pre, foreign['data_preprocessor'], _PRE_KEYS),
    ):
        for key in keys:
            if key not in want and key not in _DEFAULTS:
                continue
            w = want.get(key, _DEFAULTS.get(key))
            h = have.get(key, _DEFAULTS.get(key))
            if not _same(h, w):
                wrong.append(f'{where}.{key}={w!r} (config: {h!r})')
    if wrong:
        raise ForeignCheckpointError(
            f'load_from={path} holds a {foreign["layout"]} network ({foreign["repository"]}) '
            'that the config does not build, so the warm start would not start from the '
            "authors' network. Set:\n  " + '\n  '.join(wrong) + '\n  (in the config or with '
            '--cfg-options; docs/converting_checkpoints.md has warm-start configs).'
        )
