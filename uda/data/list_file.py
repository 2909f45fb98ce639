"""The generic list-file dataset: a user's own data needs only a config."""

from __future__ import annotations

import os
from typing import Any, Optional

from uda.data.base import FilePairDataset
from uda.data.image_labels import FROM_MASKS
from uda.registry import DATASETS


@DATASETS.register_module()
class ListFileDataset(FilePairDataset):
    """Images (and labels) named by a list file; the format the synthetic CLI writes.

    Each non-empty line is ``image_path [label_path]``, relative to ``data_root``. Lines
    without a label are allowed only when ``with_label=False``.

    Args:
        data_root: Folder the paths are relative to.
        list_file: List file, relative to ``data_root`` or absolute.
        **kwargs: See :class:`SegDataset`.
    """

    def __init__(self, data_root: str, list_file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_root = data_root
        path = list_file if os.path.isabs(list_file) else os.path.join(data_root, list_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'List file not found: {path}. Set `data_root` / `list_file` in the dataset '
                'config (or --cfg-options), or write a split with `python -m uda.data.synthetic`.'
            )
        self.items: list[tuple[str, Optional[str]]] = []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) > 2:
                    raise ValueError(f'{path}:{lineno}: expected `image [label]`, got {line!r}.')
                img = os.path.join(data_root, parts[0])
                lbl = os.path.join(data_root, parts[1]) if len(parts) == 2 else None
                if self.reads_label and lbl is None:
                    raise ValueError(
                        f'{path}:{lineno}: no label path, but with_label=True or '
                        "image_labels='from_mask'. Add the label, or set with_label=False "
                        'for unlabelled data.'
                    )
                self.items.append((img, lbl if self.reads_label else None))
        if not self.items:
            raise ValueError(
                f'List file {path} names no images: the dataset would be empty. '
                'Fill it with `image [label]` lines.'
            )
        missing = [p for it in self.items for p in it if p is not None and not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} file(s) named in {path} do not exist, first: {missing[0]}. '
                f'Paths are relative to data_root={data_root!r}; fix the root or the list.'
            )
        if self.image_labels is not None and self.image_labels not in FROM_MASKS:
            for img, _ in self.items:  # every image needs a line: fail now, not mid-training
                self.image_labels_of(img, None)
