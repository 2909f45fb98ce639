"""Mixing masks: ClassMix (DACS), CutMix boxes (UniMatch), block masks (MIC), and ``mix``.

All masks are ``[B, H, W]``, one independent draw per image (ClassMix's batch pool draws
each image's classes from the classes of the whole batch, as the reference). Random numbers
come from an optional CPU ``torch.Generator`` (reproducible on any device); the masks are
built on the device of the labels or on ``device``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Device = Union[str, torch.device, None]


CLASS_POOLS = ('batch', 'image')


def class_mix_masks(
    labels: Tensor,
    ignore_index: int = 255,
    generator: Optional[torch.Generator] = None,
    pool: str = 'image',
) -> Tensor:
    """ClassMix masks: per image, the pixels of half of the classes of a pool of classes.

    ``pool='batch'`` (the DACS code as DAFormer / MIC run it): for each image, ``ceil(n / 2)``
    of the ``n`` classes of the *whole batch*, the ignore label included, are drawn uniformly
    without replacement and the image's pixels of those classes are set (lhoyer/MIC
    seg/mmseg/models/utils/dacs_transforms.py:90-99, ``torch.unique(labels)`` over the batch;
    vikolss/DACS trainUDA.py). An image can get classes it does not hold, and so fewer, even
    no, pasted pixels; pasted ignore pixels keep the ignore label.

    ``pool='image'`` (the ClassMix paper, Olsson et al., WACV 2021): ``ceil(n / 2)`` of the
    image's own ``n`` classes, ``ignore_index`` excluded, so every image with a class pastes.

    Args:
        labels: [B, H, W] integer class ids of the images whose pixels are pasted.
        ignore_index: Label value never chosen with ``pool='image'``.
        generator: Optional CPU RNG for reproducible choices.
        pool: ``'batch'`` or ``'image'`` (see above).

    Returns:
        [B, H, W] bool, True on pixels of the chosen classes.
    """
    if labels.dim() != 3 or labels.is_floating_point():
        raise ValueError(
            f'class_mix_masks expects integer labels [B, H, W], got {labels.dtype} '
            f'{tuple(labels.shape)}.'
        )
    if pool not in CLASS_POOLS:
        raise ValueError(
            f"class_mix_masks(pool={pool!r}): use 'batch' (DACS / DAFormer / MIC code) or "
            "'image' (each image's own classes)."
        )
    if pool == 'batch':
        classes = torch.unique(labels)
        n = int(classes.numel())
        picks = [
            classes[torch.randperm(n, generator=generator)[: math.ceil(n / 2)].to(classes.device)]
            for _ in range(labels.shape[0])
        ]
        return torch.stack([torch.isin(label, pick) for label, pick in zip(labels, picks)])
    masks = []
    for label in labels:
        classes = torch.unique(label)
        classes = classes[classes != ignore_index]
        n = int(classes.numel())
        pick = torch.randperm(n, generator=generator)[: math.ceil(n / 2)].to(classes.device)
        masks.append(torch.isin(label, classes[pick]))
    return torch.stack(masks)


def cutmix_boxes(
    B: int,
    H: int,
    W: int,
    p: float = 0.5,
    area: Sequence[float] = (0.02, 0.4),
    aspect: Sequence[float] = (0.3, 1 / 0.3),
    generator: Optional[torch.Generator] = None,
    device: Device = None,
) -> Tensor:
    """CutMix boxes: per image, with probability ``p``, one box; otherwise an empty mask.

    UniMatch ``obtain_cutmix_box`` (LiheYoung/UniMatch dataset/transform.py): box area
    ``U(area) * H * W``, aspect ratio ``r ~ U(aspect)``, width ``int(sqrt(area / r))``, height
    ``int(sqrt(area * r))``. UniMatch redraws the ratio and position until the box fits;
    here the box is clipped to the image and its corner drawn uniformly among the positions
    where it fits, so every draw costs the same.

    Args:
        B, H, W: Batch size and mask size.
        p: Probability that an image gets a box.
        area: Range of the box area as a fraction of the image.
        aspect: Range of the aspect ratio (height / width).
        generator: Optional CPU RNG.
        device: Device of the returned mask.

    Returns:
        [B, H, W] bool, True inside the box.
    """
    on = torch.rand(B, generator=generator) < p
    size = (
        (area[0] + (area[1] - area[0]) * torch.rand(B, generator=generator, dtype=torch.float64))
        * H
        * W
    )
    ratio = aspect[0] + (aspect[1] - aspect[0]) * torch.rand(
        B, generator=generator, dtype=torch.float64
    )
    bw = torch.sqrt(size / ratio).long().clamp(0, W)
    bh = torch.sqrt(size * ratio).long().clamp(0, H)
    x0 = (torch.rand(B, generator=generator, dtype=torch.float64) * (W - bw + 1)).long()
    y0 = (torch.rand(B, generator=generator, dtype=torch.float64) * (H - bh + 1)).long()
    x0, y0, bw, bh, on = (t.to(device) for t in (x0, y0, bw, bh, on))
    xs = torch.arange(W, device=device)[None, None, :]
    ys = torch.arange(H, device=device)[None, :, None]
    inside_x = (xs >= x0[:, None, None]) & (xs < (x0 + bw)[:, None, None])
    inside_y = (ys >= y0[:, None, None]) & (ys < (y0 + bh)[:, None, None])
    return inside_x & inside_y & on[:, None, None]


def block_masks(
    B: int,
    H: int,
    W: int,
    block_size: int = 64,
    mask_ratio: float = 0.7,
    generator: Optional[torch.Generator] = None,
    device: Device = None,
) -> Tensor:
    """MIC block keep-masks: a coarse random grid, nearest-upsampled to the image.

    ``BlockMaskGenerator.generate_mask`` (lhoyer/MIC seg/mmseg/models/utils/
    masking_transforms.py): a grid of ``round(H / block_size) x round(W / block_size)`` cells,
    a cell kept (1) when ``U(0, 1) > mask_ratio`` (so about ``1 - mask_ratio`` of the image
    stays visible), resized to ``H x W`` with nearest interpolation. The masked image is
    ``img * mask``.

    Args:
        B, H, W: Batch size and mask size.
        block_size: Cell side in pixels (64 in MIC).
        mask_ratio: Probability that a cell is masked out (0.7 in MIC).
        generator: Optional CPU RNG.
        device: Device of the returned mask.

    Returns:
        [B, H, W] float, 1 = keep, 0 = masked.
    """
    gh, gw = max(1, round(H / block_size)), max(1, round(W / block_size))
    keep = (torch.rand(B, 1, gh, gw, generator=generator) > mask_ratio).float()
    return F.interpolate(keep.to(device), size=(H, W), mode='nearest')[:, 0]


def mix(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Take ``a`` where ``mask`` is set and ``b`` elsewhere, per pixel.

    Works for images [B, C, H, W] and for labels or weights [B, H, W] alike, so one mask
    composes the mixed image, its label and its pixel weights (DACS ``one_mix``).

    Args:
        mask: [B, H, W] bool (or 0/1) mask.
        a: [B, C, H, W] or [B, H, W] values where the mask is set (e.g. the source).
        b: Same shape as ``a``, values elsewhere (e.g. the target).
    """
    if a.shape != b.shape:
        raise ValueError(f'mix: a {tuple(a.shape)} and b {tuple(b.shape)} differ in shape.')
    if (
        mask.dim() != 3
        or a.dim() not in (3, 4)
        or a.shape[-2:] != mask.shape[-2:]
        or a.shape[0] != mask.shape[0]
    ):
        raise ValueError(
            f'mix: mask {tuple(mask.shape)} must be [B, H, W] and a, b '
            f'{tuple(a.shape)} [B, C, H, W] or [B, H, W] of the same B, H, W.'
        )
    m = mask.bool() if mask.dtype != torch.bool else mask
    if a.dim() == 4:
        m = m[:, None]
    return torch.where(m, a, b)
