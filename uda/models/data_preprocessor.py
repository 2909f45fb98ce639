"""Normalise, pad and stack images (and labels) on the device, for one or several branches."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from uda.registry import MODELS


def divisible_size(size: Sequence[int], size_divisor: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``size_divisor`` (encoders downsample by it)."""
    d = max(int(size_divisor), 1)
    return int(math.ceil(size[0] / d) * d), int(math.ceil(size[1] / d) * d)


def pad_bottom_right(x: torch.Tensor, size: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Pad [..., H, W] at the bottom and right to ``size`` (H', W') >= (H, W) with ``value``.

    Bottom/right only, so the top-left H x W of any output is the prediction for the input and
    cropping back is a slice. Used for batches here and for single images at inference
    (``uda.evaluation.inference.pad_to_divisor``).
    """
    ph, pw = int(size[0]) - x.shape[-2], int(size[1]) - x.shape[-1]
    if ph < 0 or pw < 0:
        raise ValueError(f'Cannot pad {tuple(x.shape[-2:])} down to {tuple(size)}.')
    return F.pad(x, (0, pw, 0, ph), value=value) if ph or pw else x


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
        channel_order: ``'rgb'`` (uda reads RGB images) or ``'bgr'``: the network takes BGR
            input, as the Caffe-ported DeepLab-v2 of ADVENT and AdaptSegNet (images flipped
            to BGR before the mean is subtracted: valeoai/ADVENT advent/dataset/
            base_dataset.py:35-38). ``mean`` and ``std`` are then in BGR order;
            :meth:`denormalize` still returns RGB.
    """

    def __init__(
        self,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        size_divisor: int = 32,
        seg_pad_val: int = 255,
        non_blocking: bool = False,
        channel_order: str = 'rgb',
    ) -> None:
        super().__init__(non_blocking)
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError(
                f"SegDataPreprocessor: channel_order must be 'rgb' or 'bgr', got {channel_order!r}."
            )
        self.channel_order = channel_order
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        self.size_divisor = size_divisor
        self.seg_pad_val = seg_pad_val

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB pixel values in 0-255 units [..., 3, H, W] -> the network's normalised input."""
        if self.channel_order == 'bgr':
            x = x.flip(-3)
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input [..., 3, H, W] -> RGB pixel values in 0-255 units (float,
        unclamped)."""
        x = x * self.std.to(x) + self.mean.to(x)
        return x.flip(-3) if self.channel_order == 'bgr' else x

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
        h, w = divisible_size(
            (max(i.shape[-2] for i in imgs), max(i.shape[-1] for i in imgs)), self.size_divisor
        )
        batch = []
        for img, sample in zip(imgs, samples):
            batch.append(pad_bottom_right(self.normalize(img.float()), (h, w), 0.0))
            sample['pad_shape'] = (h, w)
            sample.setdefault('img_shape', tuple(img.shape[-2:]))
            gt = sample.get('gt_sem_seg')
            if gt is not None:
                sample['gt_sem_seg'] = pad_bottom_right(gt, (h, w), self.seg_pad_val)
            valid = sample.get('valid_mask')  # unlabelled images: pixels not padded by a crop
            if valid is not None:
                sample['valid_mask'] = pad_bottom_right(valid.to(torch.uint8), (h, w), 0).bool()
        return dict(inputs=torch.stack(batch, 0), data_samples=samples)
