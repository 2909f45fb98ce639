"""Normalise, pad and stack images (and labels) on the device, for one or several branches."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from uda.registry import MODELS


@MODELS.register_module()
class SegDataPreprocessor(BaseDataPreprocessor):
    """Turn collated samples into normalised float batches.

    Accepts ``{'inputs': [uint8 [3, H, W], ...], 'data_samples': [dict, ...]}`` or a dict of such
    branches (``{'source': ..., 'target': ...}``) and returns the same structure with
    ``inputs`` as float [B, 3, H', W']. Images are padded bottom/right to a multiple of
    ``size_divisor`` (encoders need it) with zeros after normalisation; labels are padded with
    ``seg_pad_val`` so padding never counts as a class. Each data sample gets ``pad_shape``.

    Args:
        mean: Per-channel mean, in 0-255 units (ImageNet by default).
        std: Per-channel std, in 0-255 units.
        size_divisor: Pad height and width up to a multiple of this (the encoder's stride).
        seg_pad_val: Label value of padded pixels (the ignore index).
    """

    def __init__(self, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375), size_divisor: int = 32,
                 seg_pad_val: int = 255, non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        self.size_divisor = size_divisor
        self.seg_pad_val = seg_pad_val

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel values in 0-255 units [B, 3, H, W] -> the network's normalised input."""
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input [B, 3, H, W] -> pixel values in 0-255 units (float, unclamped)."""
        return x * self.std.to(x) + self.mean.to(x)

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        data = self.cast_data(data)
        if 'inputs' in data:
            return self._branch(data)
        out: dict[str, dict] = dict(inputs={}, data_samples={})
        for name, branch in data.items():
            b = self._branch(branch)
            out['inputs'][name] = b['inputs']
            out['data_samples'][name] = b['data_samples']
        return out

    def _branch(self, data: dict) -> dict[str, Any]:
        imgs = list(data['inputs'])
        samples = [dict(s) for s in data.get('data_samples', [{} for _ in imgs])]
        d = self.size_divisor
        h = int(math.ceil(max(i.shape[-2] for i in imgs) / d) * d)
        w = int(math.ceil(max(i.shape[-1] for i in imgs) / d) * d)
        batch = []
        for img, sample in zip(imgs, samples):
            x = (img.float() - self.mean) / self.std
            ph, pw = h - img.shape[-2], w - img.shape[-1]
            batch.append(F.pad(x, (0, pw, 0, ph), value=0.0))
            sample['pad_shape'] = (h, w)
            sample.setdefault('img_shape', tuple(img.shape[-2:]))
            gt = sample.get('gt_sem_seg')
            if gt is not None:
                sample['gt_sem_seg'] = F.pad(gt, (0, pw, 0, ph), value=self.seg_pad_val)
        return dict(inputs=torch.stack(batch, 0), data_samples=samples)
