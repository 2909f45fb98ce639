"""Class protocols: names, palettes and evaluation subsets, stored as JSON data.

A protocol file in ``uda/data/protocols/`` either lists ``classes`` and ``palette`` (a label
space of its own) or names a ``base`` protocol and a ``subset`` of its class names (an evaluation
protocol over the base label space, e.g. the 16 SYNTHIA classes inside the 19 Cityscapes ones).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

PROTOCOL_DIR = os.path.join(os.path.dirname(__file__), 'protocols')


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
    """Load a protocol by name, resolving ``base`` + ``subset`` protocols."""
    path = os.path.join(PROTOCOL_DIR, f'{name}.json')
    if not os.path.isfile(path):
        raise KeyError(f"Unknown class protocol '{name}'. Available: {available_protocols()}. "
                       f'Add a JSON file to {PROTOCOL_DIR} to define a new one.')
    with open(path) as f:
        spec = json.load(f)
    if 'base' in spec:
        base = get_protocol(spec['base'])
        unknown = [c for c in spec['subset'] if c not in base.classes]
        if unknown:
            raise ValueError(f'{path}: subset classes {unknown} are not in base protocol '
                             f"'{base.name}' ({list(base.classes)}).")
        ids = tuple(sorted(base.classes.index(c) for c in spec['subset']))
        return ClassProtocol(name, base.classes, base.palette, ids)
    classes = tuple(spec['classes'])
    palette = tuple(tuple(int(v) for v in c) for c in spec['palette'])
    if len(palette) != len(classes):
        raise ValueError(f'{path}: {len(classes)} classes but {len(palette)} palette colours.')
    return ClassProtocol(name, classes, palette, tuple(range(len(classes))))


def resolve_eval_ids(protocol: ClassProtocol, subset: Optional[Sequence[str]] = None
                     ) -> tuple[int, ...]:
    """Ids of a named class subset (or the protocol's own evaluation classes)."""
    if subset is None:
        return protocol.eval_ids
    missing = [c for c in subset if c not in protocol.classes]
    if missing:
        raise ValueError(f'Classes {missing} are not in protocol {protocol.name!r}; '
                         f'its classes are {list(protocol.classes)}.')
    return tuple(sorted(protocol.classes.index(c) for c in subset))
