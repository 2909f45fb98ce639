"""Multi-branch training data: independent draws from several datasets into one batch."""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Optional

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Dataset, Sampler

from uda.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS


@DATASETS.register_module()
class MultiBranchDataset(Dataset):
    """Several datasets drawn independently into one sample ``{branch: sample}``.

    UDA uses ``branches=dict(source=..., target=...)``; semi-supervised training uses
    ``labeled``/``unlabeled``. Index with a tuple (one index per branch, as
    :class:`uda.data.MultiBranchInfiniteSampler` yields) or with an int (taken modulo each
    branch's length).

    Args:
        branches: Branch name -> dataset config (or dataset).
    """

    def __init__(self, branches: dict[str, Any]) -> None:
        if not branches:
            raise ValueError('MultiBranchDataset needs at least one branch, e.g. '
                             'branches=dict(source=..., target=...).')
        self.names = list(branches)
        self.datasets = {k: (DATASETS.build(v) if isinstance(v, dict) else v)
                         for k, v in branches.items()}
        for k, d in self.datasets.items():
            if len(d) == 0:
                raise ValueError(f"Branch '{k}' of MultiBranchDataset is empty.")

    @property
    def metainfo(self) -> dict:
        return self.datasets[self.names[-1]].metainfo

    def __len__(self) -> int:
        return max(len(d) for d in self.datasets.values())

    def __getitem__(self, index: Any) -> dict[str, Any]:
        if isinstance(index, (tuple, list)):
            return {k: self.datasets[k][int(i)] for k, i in zip(self.names, index)}
        return {k: d[int(index) % len(d)] for k, d in self.datasets.items()}


@DATA_SAMPLERS.register_module()
class MultiBranchInfiniteSampler(Sampler):
    """Endless index stream, independent per branch, sharded across ranks.

    Yields one index tuple per sample (one index per branch of a :class:`MultiBranchDataset`),
    or plain ints for a single dataset. Each branch reshuffles its own dataset whenever it runs
    out, so a small target set and a large source set never wait for each other. Rank ``r`` of
    ``w`` takes every ``w``-th element of each stream, so ranks see disjoint samples.

    Args:
        dataset: The dataset to sample from.
        shuffle: Shuffle (True) or cycle in order (False).
        seed: Base seed; the Runner passes its seed. The same seed yields the same stream.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: Optional[int] = None) -> None:
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.shuffle = shuffle
        if isinstance(dataset, MultiBranchDataset):
            self.sizes = [len(dataset.datasets[k]) for k in dataset.names]
            self.multi = True
        else:
            self.sizes = [len(dataset)]
            self.multi = False
        if min(self.sizes) == 0:
            raise ValueError('MultiBranchInfiniteSampler: a dataset is empty.')

    def branch_stream(self, branch: int, size: int) -> Iterator[int]:
        """Infinite index stream of one branch (before rank sharding)."""
        g = torch.Generator()
        g.manual_seed(self.seed + 7919 * branch)
        while True:
            if self.shuffle:
                yield from torch.randperm(size, generator=g).tolist()
            else:
                yield from range(size)

    def __iter__(self) -> Iterator[Any]:
        streams = [itertools.islice(self.branch_stream(b, n), self.rank, None, self.world_size)
                   for b, n in enumerate(self.sizes)]
        while True:
            idx = tuple(next(s) for s in streams)
            yield idx if self.multi else idx[0]

    def __len__(self) -> int:
        return max(self.sizes) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Infinite streams have no epochs; kept for the Runner's interface."""


@FUNCTIONS.register_module()
def uda_collate(batch: list[dict]) -> dict:
    """Collate samples (or ``{branch: sample}`` dicts) into lists, per branch.

    Images may differ in size (validation); the data preprocessor pads and stacks them on the
    device, so collation only groups: ``{'inputs': [T, ...], 'data_samples': [dict, ...]}``.
    """
    first = batch[0]
    if 'inputs' in first:
        return dict(inputs=[b['inputs'] for b in batch],
                    data_samples=[b['data_samples'] for b in batch])
    return {k: uda_collate([b[k] for b in batch]) for k in first}
