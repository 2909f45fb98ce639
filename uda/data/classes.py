"""Class protocols and label maps: names, palettes, evaluation subsets and id maps, as JSON data.

A protocol file in ``uda/data/protocols/`` either lists ``classes`` and ``palette`` (a label
space of its own) or names a ``base`` protocol and a ``subset`` of its class names (an evaluation
protocol over the base label space, e.g. the 16 SYNTHIA classes inside the 19 Cityscapes ones).

A label map file in ``uda/data/label_maps/`` maps the raw ids stored in a dataset's label files
onto the ids of a protocol: ``{"name", "description", "to": protocol, "map": {raw: id}}``. Every
raw id the dataset may contain is listed (ids without a class map to 255), so a value that is
not listed is a corrupt or foreign label file, and the datasets reject it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Optional, Sequence, Union

PROTOCOL_DIR = os.path.join(os.path.dirname(__file__), 'protocols')
LABEL_MAP_DIR = os.path.join(os.path.dirname(__file__), 'label_maps')


@dataclass(frozen=True)
class ClassProtocol:
    """A label space and the classes evaluated in it.

    Attributes:
        name: Protocol name (the JSON file stem).
        classes: Names of all label ids ``0..num_classes-1`` of the label space.
        palette: One RGB colour per label id.
        eval_ids: Label ids that enter the mean IoU (all of them unless a subset is named).
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    eval_ids: tuple[int, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def eval_classes(self) -> tuple[str, ...]:
        return tuple(self.classes[i] for i in self.eval_ids)


def available_protocols() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(PROTOCOL_DIR) if f.endswith('.json'))


@lru_cache(maxsize=None)
def get_protocol(name: str) -> ClassProtocol:
    """Load a protocol by name (``uda/data/protocols/<name>.json``) or from a JSON file path
    (a user's own label space: ``protocol='data/mine/classes.json'``), resolving ``base`` +
    ``subset`` protocols."""
    own = name.endswith('.json')
    path = name if own else os.path.join(PROTOCOL_DIR, f'{name}.json')
    if own and not os.path.isfile(path):
        raise FileNotFoundError(
            f'Class protocol file not found: {path}. Write it as {{"name": ..., "classes": '
            '[...], "palette": [[r, g, b], ...]} (see uda/data/protocols/camvid11.json).'
        )
    if not os.path.isfile(path):
        raise KeyError(
            f"Unknown class protocol '{name}'. Available: {available_protocols()}. "
            f'Add a JSON file to {PROTOCOL_DIR} to define a new one.'
        )
    with open(path) as f:
        spec = json.load(f)
    if 'base' in spec:
        base = get_protocol(spec['base'])
        unknown = [c for c in spec['subset'] if c not in base.classes]
        if unknown:
            raise ValueError(
                f'{path}: subset classes {unknown} are not in base protocol '
                f"'{base.name}' ({list(base.classes)})."
            )
        ids = tuple(sorted(base.classes.index(c) for c in spec['subset']))
        return ClassProtocol(name, base.classes, base.palette, ids)
    classes = tuple(spec['classes'])
    palette = tuple((int(c[0]), int(c[1]), int(c[2])) for c in spec['palette'])
    if len(palette) != len(classes):
        raise ValueError(f'{path}: {len(classes)} classes but {len(palette)} palette colours.')
    return ClassProtocol(name, classes, palette, tuple(range(len(classes))))


def resolve_eval_ids(
    protocol: ClassProtocol, subset: Optional[Sequence[str]] = None
) -> tuple[int, ...]:
    """Ids of a named class subset (or the protocol's own evaluation classes)."""
    if subset is None:
        return protocol.eval_ids
    missing = [c for c in subset if c not in protocol.classes]
    if missing:
        raise ValueError(
            f'Classes {missing} are not in protocol {protocol.name!r}; '
            f'its classes are {list(protocol.classes)}.'
        )
    return tuple(sorted(protocol.classes.index(c) for c in subset))


@dataclass(frozen=True)
class LabelMap:
    """Raw label ids of a dataset -> ids of a protocol's label space.

    Attributes:
        name: Map name (the JSON file stem), or ``'custom'`` for a dict from a config.
        to: Protocol whose label space the mapped ids belong to (None: not stated).
        mapping: ``(raw_id, id)`` pairs; ``id`` may be the ignore index.
    """

    name: str
    to: Optional[str]
    mapping: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict[int, int]:
        return dict(self.mapping)


def available_label_maps() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(LABEL_MAP_DIR) if f.endswith('.json'))


@lru_cache(maxsize=None)
def get_label_map(name: str) -> LabelMap:
    """Load a label map by name from ``uda/data/label_maps``."""
    path = os.path.join(LABEL_MAP_DIR, f'{name}.json')
    if not os.path.isfile(path):
        raise KeyError(
            f"Unknown label map '{name}'. Available: {available_label_maps()}. Add a "
            f'JSON file to {LABEL_MAP_DIR}, or pass a dict {{raw_id: id}} instead.'
        )
    with open(path) as f:
        spec = json.load(f)
    if 'map' not in spec:
        raise ValueError(f'{path}: a label map needs a "map" object {{"raw_id": id}}.')
    to = spec.get('to')
    if to is not None:
        get_protocol(to)  # fail early on a map that names an unknown protocol
    pairs = tuple(sorted((int(k), int(v)) for k, v in spec['map'].items()))
    return LabelMap(name, to, pairs)


def resolve_label_map(label_map: Union[str, Mapping, LabelMap, None]) -> Optional[LabelMap]:
    """A label map from its name, a ``{raw: id}`` dict (a config), or None."""
    if label_map is None or isinstance(label_map, LabelMap):
        return label_map
    if isinstance(label_map, str):
        return get_label_map(label_map)
    if isinstance(label_map, Mapping):
        return LabelMap(
            'custom', None, tuple(sorted((int(k), int(v)) for k, v in label_map.items()))
        )
    raise TypeError(
        f'label_map must be a map name ({available_label_maps()}) or a dict '
        f'{{raw_id: id}}, got {type(label_map).__name__}.'
    )
