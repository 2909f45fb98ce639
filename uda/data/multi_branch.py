"""Multi-branch training data: independent draws from several datasets into one batch.

A branch may also hold several named views of one drawn image (``unlabeled.weak``,
``unlabeled.strong1``, ...).
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Iterator, Optional

import albumentations as A
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Dataset, Sampler

from uda.data.pipelines import apply_to_sample, build_pipeline
from uda.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS


@DATASETS.register_module()
class MultiBranchDataset(Dataset):
    """Several datasets drawn independently into one sample ``{branch: sample}``.

    UDA uses ``branches=dict(source=..., target=...)``; semi-supervised training uses
    ``labeled``/``unlabeled``. Index with a tuple (one index per branch, as
    :class:`uda.data.MultiBranchInfiniteSampler` yields) or with an int (taken modulo each
    branch's length).

    A branch may instead give named *views* of one drawn image, as UniMatch's weak and strong
    views of each unlabelled image (LiheYoung/UniMatch dataset/semi.py)::

        unlabeled=dict(dataset=dict(type='CityscapesDataset', ..., pipeline=[...geometric...]),
                       views=dict(weak=[], strong1=[...], strong2=[...]))

    The dataset's own pipeline runs once (the geometric part the views share); each view's
    albumentations pipeline then runs on a copy of that sample. The sample gets one entry per
    view, ``'unlabeled.weak'``, ``'unlabeled.strong1'``, ... The branch is sampled as one
    branch, so its views always show the same image.

    Args:
        branches: Branch name -> dataset config (or dataset), or ``dict(dataset=...,
            views=dict(name=[transform dicts], ...))``.
    """

    def __init__(self, branches: dict[str, Any]) -> None:
        if not branches:
            raise ValueError(
                'MultiBranchDataset needs at least one branch, e.g. '
                'branches=dict(source=..., target=...).'
            )
        self.names = list(branches)
        self.datasets: dict[str, Any] = {}
        # Branch -> {view name: pipeline}; branches without views are absent.
        self.views: dict[str, dict[str, A.Compose]] = {}
        for k, v in branches.items():
            if isinstance(v, dict) and 'views' in v:
                self.views[k] = self._build_views(k, v)
                v = v['dataset']
            self.datasets[k] = DATASETS.build(v) if isinstance(v, dict) else v
        for k, d in self.datasets.items():
            if len(d) == 0:
                raise ValueError(f"Branch '{k}' of MultiBranchDataset is empty.")
        self._seeded_for: Optional[tuple] = None

    @staticmethod
    def _build_views(branch: str, cfg: dict) -> dict[str, A.Compose]:
        where = f"MultiBranchDataset branch '{branch}'"
        extra = sorted(set(cfg) - {'dataset', 'views'})
        if 'dataset' not in cfg or extra:
            raise ValueError(
                f'{where}: a branch with views is dict(dataset=dict(type=...), '
                f'views=dict(weak=[...], strong1=[...])); got keys {sorted(cfg)}. '
                'Move the dataset arguments into `dataset`.'
            )
        views = cfg['views']
        if not isinstance(views, dict) or not views:
            raise ValueError(
                f'{where}: views must be a non-empty dict of view name -> list of '
                f'transform dicts, e.g. views=dict(weak=[], strong=[...]); got '
                f'{views!r}.'
            )
        out = {}
        for name, pipeline in views.items():
            if not isinstance(name, str) or not name or '.' in name:
                raise ValueError(
                    f'{where}: view name {name!r} must be a non-empty string '
                    "without '.' (batch branches are named 'branch.view')."
                )
            if pipeline is not None and not isinstance(pipeline, (list, tuple)):
                raise ValueError(
                    f"{where}, view '{name}': give a list of transform dicts "
                    f'(an empty list for the shared image as is), got {pipeline!r}.'
                )
            try:
                out[name] = build_pipeline(pipeline)
            except (KeyError, TypeError, ValueError) as err:
                msg = err.args[0] if err.args else str(err)
                raise ValueError(f"{where}, view '{name}': {msg}") from err
        return out

    @property
    def metainfo(self) -> dict:
        return self.datasets[self.names[-1]].metainfo

    @property
    def batch_branches(self) -> list[str]:
        """Names of the branches of a sample: ``'source'``, ``'unlabeled.weak'``, ..."""
        return [
            f'{k}.{v}' if k in self.views else k
            for k in self.names
            for v in (self.views.get(k) or [None])
        ]

    def __len__(self) -> int:
        return max(len(d) for d in self.datasets.values())

    def _seed_views(self) -> None:
        # As SegDataset._seed_pipeline: albumentations' own RNG, seeded from torch's
        # per-process seed, with a different stream per view (two views with the same
        # transforms must not draw the same parameters).
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), info.id if info is not None else -1)
        if self._seeded_for != key:
            base = torch.initial_seed()
            for b, views in enumerate(self.views.values()):
                for j, pipeline in enumerate(views.values()):
                    pipeline.set_random_seed((base + 1_000_003 * (64 * b + j + 1)) % 2**32)
            self._seeded_for = key

    def _branch_sample(self, name: str, index: int) -> dict[str, Any]:
        sample = self.datasets[name][index]
        if name not in self.views:
            return {name: sample}
        self._seed_views()
        return {
            f'{name}.{view}': apply_to_sample(pipeline, sample)
            for view, pipeline in self.views[name].items()
        }

    def __getitem__(self, index: Any) -> dict[str, Any]:
        if isinstance(index, (tuple, list)):
            pairs = [(k, int(i)) for k, i in zip(self.names, index)]
        else:
            pairs = [(k, int(index) % len(self.datasets[k])) for k in self.names]
        out: dict[str, Any] = {}
        for name, i in pairs:
            out.update(self._branch_sample(name, i))
        return out


def sampling_branch(dataset: Dataset, branch: str, who: str) -> tuple[int, Dataset]:
    """``(index, dataset)`` of the sampling branch ``branch`` of a :class:`MultiBranchDataset`
    (or ``(0, dataset)`` for a single dataset), for samplers that draw one branch their own way
    (importance sampling, rare-class sampling)."""
    if not isinstance(dataset, MultiBranchDataset):
        return 0, dataset
    if branch not in dataset.names:
        raise KeyError(f"{who}: branch '{branch}' not in the dataset's branches {dataset.names}.")
    return dataset.names.index(branch), dataset.datasets[branch]


@DATA_SAMPLERS.register_module()
class MultiBranchInfiniteSampler(Sampler):
    """Endless index stream, independent per branch, sharded across ranks.

    Yields one index tuple per sample (one index per branch of a :class:`MultiBranchDataset`),
    or plain ints for a single dataset. Each branch reshuffles its own dataset whenever it runs
    out, so a small target set and a large source set never wait for each other. Rank ``r`` of
    ``w`` takes every ``w``-th element of each stream, so ranks see disjoint samples.

    ``follow`` makes a branch take another branch's indices instead of its own stream: with
    ``follow=dict(unlabeled_mix='unlabeled')`` element ``i`` of the CutMix partner batch is
    another crop (its own augmentation draw) of the same unlabelled image, as UniMatch's
    ``zip(trainloader_l, trainloader_u, trainloader_u)``: one loader iterated twice under one
    ``DistributedSampler`` epoch order (LiheYoung/UniMatch unimatch.py:83-88, 118-125;
    fixmatch.py:86-88, 117-120; confirmed in LiheYoung/UniMatch issue #51).

    Args:
        dataset: The dataset to sample from.
        shuffle: Shuffle (True) or cycle in order (False).
        seed: Base seed; the Runner passes its seed. The same seed yields the same stream.
        follow: Branch -> branch whose indices it takes (both of the same length).
    """

    def __init__(
        self,
        dataset: Dataset,
        shuffle: bool = True,
        seed: Optional[int] = None,
        follow: Optional[dict[str, str]] = None,
    ) -> None:
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.shuffle = shuffle
        if isinstance(dataset, MultiBranchDataset):
            self.sizes = [len(dataset.datasets[k]) for k in dataset.names]
            self.multi = True
        else:
            self.sizes = [len(dataset)]  # type: ignore[arg-type]
            self.multi = False
        if min(self.sizes) == 0:
            raise ValueError('MultiBranchInfiniteSampler: a dataset is empty.')
        # Branch position -> position of the branch whose index it repeats.
        self.leader: dict[int, int] = {}
        for branch, lead in (follow or {}).items():
            names = dataset.names if isinstance(dataset, MultiBranchDataset) else []
            if branch not in names or lead not in names or branch == lead:
                raise ValueError(
                    f'MultiBranchInfiniteSampler(follow={follow}): {branch!r} -> {lead!r} must '
                    f'name two different branches of the MultiBranchDataset ({names}), e.g. '
                    "follow=dict(unlabeled_mix='unlabeled')."
                )
            b, a = names.index(branch), names.index(lead)
            if self.sizes[b] != self.sizes[a] or lead in (follow or {}):
                raise ValueError(
                    f'MultiBranchInfiniteSampler(follow={follow}): branch {branch!r} '
                    f'({self.sizes[b]} images) follows {lead!r} ({self.sizes[a]} images); '
                    'give both the same dataset and let the leader follow no other branch.'
                )
            self.leader[b] = a

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
        streams = {
            b: itertools.islice(self.branch_stream(b, n), self.rank, None, self.world_size)
            for b, n in enumerate(self.sizes)
            if b not in self.leader
        }
        while True:
            own = {b: next(s) for b, s in streams.items()}
            idx = tuple(own[self.leader.get(b, b)] for b in range(len(self.sizes)))
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
    Views of one branch are ordinary batch branches (``'unlabeled.weak'``), in the same order,
    so element ``i`` of every view of a branch shows the same image.
    """
    first = batch[0]
    if 'inputs' in first:
        return dict(
            inputs=[b['inputs'] for b in batch], data_samples=[b['data_samples'] for b in batch]
        )
    return {k: uda_collate([b[k] for b in batch]) for k in first}
