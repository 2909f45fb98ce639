"""Multi-view warping: views, fusion across views."""

import torch

from uda.augment.views import Views, cut_views, fuse_views, invert_affine, sample_views, warp


def _affine(sx, sy, tx=0.0, ty=0.0, flip=False):
    return torch.tensor([[[-sx if flip else sx, 0.0, tx], [0.0, sy, ty]]])


def _ramp(h=16, w=24, c=3):
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij'
    )
    return torch.stack([xx + 2 * yy + k for k in range(c)])[None]  # linear in x and y


def test_warp_then_unwarp_is_identity_on_covered_pixels():
    x = _ramp()  # bilinear sampling reproduces a linear image exactly
    theta = _affine(0.5, 0.5, 0.25, -0.25, flip=True).double()  # zoom-in crop, flipped
    view = warp(x, theta)
    back = warp(view, invert_affine(theta))
    cover = warp(torch.ones_like(x[:, :1]), invert_affine(theta))
    inner = cover[0, 0] > 0.999  # pixels whose bilinear neighbourhood is inside the view
    assert inner.sum() > 20
    assert torch.allclose(back[0][:, inner], x[0][:, inner], atol=1e-9)
    # and outside the view nothing comes back
    assert back[0][:, cover[0, 0] == 0].abs().max() == 0


def test_flipped_view_maps_back_exactly():
    torch.manual_seed(0)
    probs = torch.rand(1, 5, 8, 12).softmax(1)
    views = Views(_affine(1, 1, flip=True), _affine(1, 1, flip=True), num_views=1)
    fused, covered, average, count = fuse_views(probs, views)
    assert covered.all()
    assert torch.equal(fused, probs) or torch.allclose(fused, probs, atol=1e-6)
    assert torch.allclose(average, probs.flip(-1), atol=1e-6)  # common frame = unflipped
    assert torch.allclose(count, torch.ones_like(count))


def test_averaging_ignores_uncovered_pixels():
    # Two views: the left and the right half of the common frame, constant class scores.
    h, w, c = 8, 16, 3
    left = _affine(0.5, 1.0, -0.5, 0.0)
    right = _affine(0.5, 1.0, 0.5, 0.0)
    theta = torch.cat([left, right])
    views = Views(theta, theta, num_views=2)
    a = torch.tensor([0.7, 0.2, 0.1]).view(1, c, 1, 1).expand(1, c, h, w)
    b = torch.tensor([0.1, 0.1, 0.8]).view(1, c, 1, 1).expand(1, c, h, w)
    fused, covered, average, count = fuse_views(torch.cat([a, b]), views)
    # Each half is seen by one view only: its value, undiluted by the other (absent) view.
    assert torch.allclose(average[0, :, :, 1 : w // 2 - 1], a[0, :, :, 1 : w // 2 - 1], atol=1e-6)
    assert torch.allclose(average[0, :, :, w // 2 + 1 : -1], b[0, :, :, w // 2 + 1 : -1], atol=1e-6)
    # Back in each view, away from the seam, the view gets its own prediction back.
    assert torch.allclose(fused[0, :, :, :-2], a[0, :, :, :-2], atol=1e-5)
    assert torch.allclose(fused[1, :, :, 2:], b[0, :, :, 2:], atol=1e-5)
    assert covered.all()


def test_average_of_overlapping_views_is_the_mean():
    h, w = 8, 8
    theta = torch.cat([_affine(1, 1), _affine(1, 1, flip=True)])
    views = Views(theta, theta, num_views=2)
    p0 = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, h, w)
    p1 = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, h, w)
    fused, covered, average, count = fuse_views(torch.cat([p0, p1]), views)
    assert torch.allclose(average, torch.full_like(average, 0.5))
    assert torch.allclose(count, torch.full_like(count, 2.0))
    assert torch.allclose(fused, torch.full_like(fused, 0.5))


def test_sample_views_layout():
    g = torch.Generator().manual_seed(0)
    hw = torch.tensor([[64, 96], [48, 80]])
    views = sample_views(hw, (64, 96), num_views=4, generator=g)
    assert views.to_image.shape == (8, 2, 3) and views.to_common.shape == (8, 2, 3)
    tc = views.to_common.view(2, 4, 2, 3)
    # First view of each image is the common frame itself (up to a flip).
    assert torch.allclose(tc[:, 0, 0, 0].abs(), torch.ones(2))
    assert torch.allclose(tc[:, 0, :, 2], torch.zeros(2, 2))
    # Zoom windows: relative size in [0.5, 1], inside the common frame.
    rel = tc[:, 1:, 1, 1]
    assert (rel >= 0.5).all() and (rel <= 1).all()
    assert (tc[:, 1:, :, 2].abs() <= 1 - rel[..., None] + 1e-6).all()
    # Views stay inside the unpadded image: corners map into the valid region.
    corners = torch.tensor([[-1.0, -1.0, 1.0], [1.0, 1.0, 1.0]]).T  # [3, 2]
    pts = views.to_image @ corners  # [8, 2, 2]
    valid = torch.tensor([[96 / 96, 64 / 64], [80 / 96, 48 / 64]]).repeat_interleave(4, 0)
    assert (pts[:, 0] <= -1 + 2 * valid[:, :1] + 1e-5).all()
    assert (pts[:, 1] <= -1 + 2 * valid[:, 1:] + 1e-5).all()
    assert (pts >= -1 - 1e-5).all()


def test_cut_views_identity_view_is_the_image():
    x = torch.rand(2, 3, 16, 24)
    theta = _affine(1, 1).expand(2, 2, 3)
    views = Views(theta.clone(), theta.clone(), num_views=1)
    assert torch.allclose(cut_views(x, views), x, atol=1e-6)
