"""Multi-view target batches on the device: affine views, warps and their fusion.

Self-training with test-time augmentation (SAC, Araslanov & Roth, CVPR 2021) looks at each
target image through several views: one random rescale-and-crop per image (shared by its
views), then per view an independent horizontal flip and, for views after the first, a random
zoom-in crop resized back. Every view keeps its affine transform, so the teacher's predictions
on the views can be warped into one *common frame* (the first view before flipping), averaged
where they overlap, and warped back into each view.

All transforms are ``[K, 2, 3]`` matrices in the normalised coordinates of
``torch.nn.functional.affine_grid`` (``align_corners=False``): ``theta`` maps an output pixel's
coordinates to the input location it samples. Everything runs batched on the device; the
data loader only delivers one clean image per target sample. Photometric noise lives in
:mod:`uda.augment.photometric` (kornia).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def warp(
    x: Tensor, theta: Tensor, size: Optional[Sequence[int]] = None, mode: str = 'bilinear'
) -> Tensor:
    """Sample ``x`` [K, C, H, W] at ``theta`` [K, 2, 3]; outside the input reads zero.

    Returns:
        [K, C, h, w] with ``(h, w) = size`` (the input size by default).
    """
    h, w = size if size is not None else x.shape[-2:]
    grid = F.affine_grid(
        theta.to(x.dtype), [x.shape[0], x.shape[1], int(h), int(w)], align_corners=False
    )
    return F.grid_sample(x, grid, mode=mode, padding_mode='zeros', align_corners=False)


def _homogeneous(theta: Tensor) -> Tensor:
    bottom = theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    return torch.cat([theta, bottom], 1)


def invert_affine(theta: Tensor) -> Tensor:
    """Inverse of [K, 2, 3] affine maps."""
    return torch.linalg.inv(_homogeneous(theta.double()))[:, :2].to(theta.dtype)


def compose_affine(outer: Tensor, inner: Tensor) -> Tensor:
    """``outer(inner(p))`` for [K, 2, 3] affine maps."""
    return (_homogeneous(outer) @ _homogeneous(inner))[:, :2]


@dataclass
class Views:
    """The affine transforms of ``num_views`` views of each image of a batch.

    Attributes:
        to_image: [B*N, 2, 3] view -> image canvas (used to cut the views out).
        to_common: [B*N, 2, 3] view -> common frame (used to fuse predictions).
        num_views: Views per image (N); views of image ``b`` are rows ``b*N ... b*N+N-1``.
    """

    to_image: Tensor
    to_common: Tensor
    num_views: int


def sample_views(
    valid_hw: Tensor,
    canvas_hw: Sequence[int],
    num_views: int = 4,
    scale_range: Sequence[float] = (1.0, 1.1),
    zoom_range: Sequence[float] = (0.5, 1.0),
    flip_p: float = 0.5,
    generator: Optional[torch.Generator] = None,
) -> Views:
    """Random SAC views of a batch of (padded) images.

    Per image: a rescale by ``s ~ U(scale_range)`` followed by a crop of the original size
    (a window of relative size ``1/s``) inside the unpadded region; this window at full canvas
    resolution is the common frame. Per view: an independent flip with probability ``flip_p``
    and, for views after the first, a zoom-in window of relative size ``r ~ U(zoom_range)``
    inside the common frame.

    Args:
        valid_hw: [B, 2] unpadded height and width of each image, in pixels.
        canvas_hw: Padded canvas ``(H, W)`` of the batch; views are cut at this size.
        num_views: Views per image.
        scale_range: Range of the per-image rescale factor (>= 1 zooms in).
        zoom_range: Range of the relative size of the zoom-in crops.
        flip_p: Probability of flipping each view.
        generator: Optional RNG (on CPU) for reproducible views.
    """
    B, N = int(valid_hw.shape[0]), int(num_views)
    H, W = canvas_hw
    if N < 1:
        raise ValueError(f'num_views must be >= 1, got {num_views}.')

    def u(*shape: int, lo: float = 0.0, hi: float = 1.0) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, dtype=torch.float64)

    vhw = valid_hw.detach().to('cpu', torch.float64)
    ext = torch.stack([vhw[:, 1] / W, vhw[:, 0] / H], 1)  # [B, 2] half-extent (x, y) of valid
    centre = ext - 1.0  # [B, 2] centre (x, y) of the valid region
    scale = u(B, 1, lo=scale_range[0], hi=scale_range[1])
    base_half = ext / scale
    base_centre = torch.stack(
        [
            centre[:, 0] + u(B, lo=-1, hi=1) * (ext[:, 0] - base_half[:, 0]),
            centre[:, 1] + u(B, lo=-1, hi=1) * (ext[:, 1] - base_half[:, 1]),
        ],
        1,
    )
    # Zoom windows inside the common frame ([-1, 1]^2); the first view is the whole frame.
    rel = u(B, N, lo=zoom_range[0], hi=zoom_range[1])
    rel[:, 0] = 1.0
    off = torch.stack([u(B, N, lo=-1, hi=1), u(B, N, lo=-1, hi=1)], -1) * (1 - rel)[..., None]
    flip = torch.where(u(B, N) < flip_p, -1.0, 1.0)
    to_common = torch.zeros(B, N, 2, 3, dtype=torch.float64)
    to_common[..., 0, 0] = rel * flip
    to_common[..., 1, 1] = rel
    to_common[..., :, 2] = off
    base = torch.zeros(B, 2, 3, dtype=torch.float64)  # common frame -> image canvas
    base[:, 0, 0], base[:, 1, 1] = base_half[:, 0], base_half[:, 1]
    base[:, :, 2] = base_centre
    base = base[:, None].expand(B, N, 2, 3).reshape(B * N, 2, 3)
    to_common = to_common.reshape(B * N, 2, 3)
    to_image = compose_affine(base, to_common)
    device = valid_hw.device
    return Views(to_image.float().to(device), to_common.float().to(device), N)


def cut_views(images: Tensor, views: Views) -> Tensor:
    """Cut ``num_views`` views [B*N, C, H, W] out of ``images`` [B, C, H, W]."""
    rep = images.repeat_interleave(views.num_views, 0)
    return warp(rep, views.to_image, images.shape[-2:])


def fuse_views(
    probs: Tensor, views: Views, valid: Optional[Tensor] = None, tolerance: float = 0.5
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Average per-view class probabilities in the common frame and warp them back.

    Each view's map is warped into the common frame with zeros outside the view; the average
    at a common-frame pixel divides by the (bilinear) count of views that cover it, so a pixel
    seen by one view gets that view's value undiluted and pixels seen by no view get nothing.

    Args:
        probs: [B*N, C, h, w] per-view probabilities (view frames).
        views: The views' transforms.
        valid: Optional [B*N, 1, h, w] mask of pixels with image content (1) in each view.
        tolerance: Minimum coverage count for a pixel to count as covered.

    Returns:
        ``fused`` [B*N, C, h, w] (renormalised to sum 1 where covered, 0 elsewhere),
        ``covered`` [B*N, h, w] bool, and the common-frame ``average`` [B, C, h, w] and
        ``count`` [B, 1, h, w].
    """
    K, C, h, w = probs.shape
    N = views.num_views
    if K % N:
        raise ValueError(f'fuse_views: {K} maps is not a multiple of num_views={N}.')
    if valid is None:
        valid = probs.new_ones(K, 1, h, w)
    to_view = invert_affine(views.to_common)  # common -> view coordinates
    both = warp(torch.cat([probs * valid, valid], 1), to_view, (h, w))
    both = both.view(K // N, N, C + 1, h, w).sum(1)
    summed, count = both[:, :C], both[:, C:]
    covered_common = (count > tolerance).to(probs.dtype)
    average = summed / count.clamp(min=1e-6) * covered_common
    back = warp(
        torch.cat([average, covered_common], 1).repeat_interleave(N, 0), views.to_common, (h, w)
    )
    fused, cov = back[:, :C], back[:, C]
    covered = (cov > 0.5) & (valid[:, 0] > 0.5)
    fused = fused / fused.sum(1, keepdim=True).clamp(min=1e-6) * covered[:, None]
    return fused, covered, average, count
