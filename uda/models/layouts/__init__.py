"""Layouts of other code bases' checkpoints, converted to uda's segmentor.

Every module of this package registers its :class:`CheckpointLayout` subclasses in
``uda.registry.CHECKPOINT_LAYOUTS``; all of them are imported here (a new layout file needs no
edit of this one). ``tools/convert_checkpoint.py`` writes a converted file; the tools and
``load_from`` convert in memory (:func:`as_uda_checkpoint`). docs/converting_checkpoints.md
lists each layout with its source repository and file.
"""

import importlib
import pkgutil

from uda.models.layouts.base import (
    CheckpointLayout,
    ConvertedCheckpoint,
    ForeignCheckpointError,
    ForeignLoadReport,
    Preprocessing,
    apply_foreign_config,
    as_uda_checkpoint,
    check_load_from,
    convert_checkpoint,
    detect_layout,
    foreign_meta,
    get_layout,
    is_uda_checkpoint,
    layout_names,
    load_foreign_checkpoint,
    read_checkpoint,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != 'base':
        importlib.import_module(f'{__name__}.{_module.name}')

__all__ = [
    'CheckpointLayout',
    'ConvertedCheckpoint',
    'ForeignCheckpointError',
    'ForeignLoadReport',
    'Preprocessing',
    'apply_foreign_config',
    'as_uda_checkpoint',
    'check_load_from',
    'convert_checkpoint',
    'detect_layout',
    'foreign_meta',
    'get_layout',
    'is_uda_checkpoint',
    'layout_names',
    'load_foreign_checkpoint',
    'read_checkpoint',
]
