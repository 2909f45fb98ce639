"""Validation datasets of several domains in one run, one after the other, with their names
(scored per domain by :class:`uda.evaluation.domains.DomainEvaluator`)."""

from __future__ import annotations

import bisect
from typing import Any

from torch.utils.data import Dataset

from uda.registry import DATASETS


@DATASETS.register_module()
class DomainDatasets(Dataset):
    """Validation datasets of several domains, one after the other, with their names.

    Args:
        domains: Domain name -> dataset config (or dataset), in evaluation order. Every domain
            must share the label space (one network scores them all).
    """

    def __init__(self, domains: dict[str, Any]) -> None:
        if not domains:
            raise ValueError(
                'DomainDatasets needs at least one domain, e.g. '
                'domains=dict(cityscapes=dict(type=...), ...).'
            )
        bad = [n for n in domains if not n or '/' in n]
        if bad:
            raise ValueError(f'DomainDatasets: domain names {bad} must be non-empty, without "/".')
        self.names = list(domains)
        self.datasets: list[Any] = [
            d if isinstance(d, Dataset) else DATASETS.build(d) for d in domains.values()
        ]
        first = self.datasets[0].metainfo.get('classes')
        for name, ds in zip(self.names[1:], self.datasets[1:]):
            if ds.metainfo.get('classes') != first:
                raise ValueError(
                    f"DomainDatasets: domain '{name}' has classes "
                    f'{list(ds.metainfo.get("classes") or [])[:3]}..., domain '
                    f"'{self.names[0]}' {list(first or [])[:3]}...; every domain must share "
                    'the label space of the network.'
                )
        self.ends: list[int] = []
        total = 0
        for ds in self.datasets:
            total += len(ds)
            self.ends.append(total)

    @property
    def metainfo(self) -> dict:
        """The first domain's metainfo and ``domains``: ``[(name, start, end), ...]``."""
        starts = [0] + self.ends[:-1]
        return dict(
            self.datasets[0].metainfo,
            domains=[(n, s, e) for n, s, e in zip(self.names, starts, self.ends)],
        )

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        k = bisect.bisect_right(self.ends, index)
        start = self.ends[k - 1] if k else 0
        return self.datasets[k][index - start]
