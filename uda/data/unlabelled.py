"""Images of several datasets as one unlabelled set (self-supervised pretraining)."""

from __future__ import annotations

import bisect
from typing import Any, Sequence

from torch.utils.data import Dataset

from uda.registry import DATASETS


@DATASETS.register_module()
class UnlabelledImages(Dataset):
    """The images of ``datasets`` one after another, without labels.

    Pretraining on "the training images of both domains" reuses the training configs'
    dataset dicts (e.g. ``[source_train, target_train]``): each dict is built with
    ``with_label=False``, so label files are never read, and labels of already built
    datasets are dropped from the samples. mmengine's ``ConcatDataset`` needs
    ``BaseDataset`` members with equal metainfo, which uda's datasets (and two domains'
    protocols) are not.

    Args:
        datasets: Dataset configs (or datasets), e.g. CamVid day and dusk.
    """

    def __init__(self, datasets: Sequence[Any]) -> None:
        if not datasets:
            raise ValueError(
                'UnlabelledImages(datasets=[]): give at least one dataset config, e.g. '
                'datasets=[source_train, target_train].'
            )
        self.datasets = []
        for i, d in enumerate(datasets):
            if isinstance(d, dict):
                d = DATASETS.build(dict(d, with_label=False))
            if len(d) == 0:
                raise ValueError(f'UnlabelledImages: datasets[{i}] ({type(d).__name__}) is empty.')
            self.datasets.append(d)
        self.ends: list[int] = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.ends.append(total)
        # An unlabelled set has no class ids (the class-count pre-flight skips it).
        self.with_label = False

    @property
    def metainfo(self) -> dict:
        return dict(self.datasets[0].metainfo)

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f'UnlabelledImages index {index} out of range ({len(self)}).')
        index %= len(self)
        k = bisect.bisect_right(self.ends, index)
        start = self.ends[k - 1] if k else 0
        sample = self.datasets[k][index - start]
        meta = dict(sample['data_samples'])
        meta.pop('gt_sem_seg', None)
        meta['dataset_index'] = k
        return dict(inputs=sample['inputs'], data_samples=meta)
