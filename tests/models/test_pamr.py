"""PAMR, the stochastic gate and the segmentor options of single-stage CAM."""

import math

import pytest
import torch

from uda.models import SMPSegmentor
from uda.models.pamr import NEIGHBOURS, PAMR, StochasticGate, shifted


def two_regions(h: int = 24, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Image: left half dark, right half bright (plus faint noise); region ids [H, W]."""
    g = torch.Generator().manual_seed(0)
    region = torch.zeros(h, w, dtype=torch.long)
    region[:, w // 2 :] = 1
    image = region.float()[None, None].expand(1, 3, h, w) * 0.8 + 0.1
    return image + 0.01 * torch.rand(1, 3, h, w, generator=g), region


def test_pamr_converges_to_the_image_regions():
    image, region = two_regions()
    w = region.shape[1]
    # Coarse masks whose boundary is 5 pixels off the image edge, plus noise.
    col = torch.arange(w).float()
    p_right = torch.sigmoid((col - (w // 2 - 5)) / 2.0).expand_as(region.float())
    g = torch.Generator().manual_seed(1)
    p_right = (p_right + 0.2 * (torch.rand(region.shape, generator=g) - 0.5)).clamp(0, 1)
    masks = torch.stack([1 - p_right, p_right])[None]
    assert (masks.argmax(1)[0] != region).sum() >= 4 * region.shape[0]  # wrong before
    refined = PAMR(num_iter=10, dilations=(1, 2, 4, 8, 12, 24))(image, masks)
    assert torch.equal(refined.argmax(1)[0], region)
    assert torch.allclose(refined.sum(1), torch.ones(1), atol=1e-5)  # convex combinations


def test_pamr_affinity_matches_the_formula_at_one_pixel():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 2, 5, 5, generator=g)
    pamr = PAMR(num_iter=1, dilations=(1,))
    aff = pamr.affinity(image)[0, 0, :, 2, 2]  # centre pixel: no padding involved
    window = image[0, :, 1:4, 1:4].reshape(2, 9)
    sigma = window.std(1, keepdim=True)  # unbiased, as torch.std in the reference
    centre = image[0, :, 2, 2][:, None]
    neigh = torch.stack([image[0, :, 2 + dy, 2 + dx] for dy, dx in NEIGHBOURS], 1)
    logits = (-(centre - neigh).abs() / (1e-8 + 0.1 * sigma)).mean(0)
    assert torch.allclose(aff, logits.softmax(0), atol=1e-6)
    # One iteration = the affinity-weighted mean of the 8 neighbours' mask values.
    masks = torch.rand(1, 3, 5, 5, generator=g)
    out = pamr(image, masks)[0, :, 2, 2]
    neigh_m = torch.stack([masks[0, :, 2 + dy, 2 + dx] for dy, dx in NEIGHBOURS], 1)
    assert torch.allclose(out, (neigh_m * aff).sum(1), atol=1e-6)


def test_pamr_equals_the_stacked_form_and_handles_large_dilations():
    g = torch.Generator().manual_seed(2)
    image, masks = torch.rand(2, 3, 6, 9, generator=g), torch.rand(2, 4, 6, 9, generator=g)
    pamr = PAMR(num_iter=3, dilations=(1, 2, 24))  # 24 > image size: replicate padding
    aff = pamr.affinity(image)
    expected = masks
    for _ in range(3):
        expected = (shifted(expected, pamr.dilations, NEIGHBOURS) * aff).sum(2)
    assert torch.allclose(pamr(image, masks), expected, atol=1e-6)


def test_pamr_rejects_bad_arguments():
    with pytest.raises(ValueError, match='dilations'):
        PAMR(dilations=(0, 1))


def test_stochastic_gate_test_form():
    deep, shallow = torch.full((1, 2, 3, 3), 2.0), torch.full((1, 2, 3, 3), -1.0)
    gate = StochasticGate(psi=0.3).eval()
    assert torch.allclose(gate(deep, shallow), torch.full_like(deep, 0.7 * 2.0 + 0.3 * -1.0))


def test_stochastic_gate_train_form():
    torch.manual_seed(0)
    deep, shallow = torch.full((4, 8, 32, 32), 2.0), torch.full((4, 8, 32, 32), -1.0)
    out = StochasticGate(psi=0.3).train()(deep, shallow)
    deep_form = (2.0 - 0.3 * -1.0) / 0.7  # M = 1: (deep - psi * shallow) / (1 - psi)
    is_deep = torch.isclose(out, torch.tensor(deep_form))
    is_shallow = torch.isclose(out, torch.tensor(-1.0))
    assert bool((is_deep | is_shallow).all())
    share = is_deep.float().mean().item()  # P(M = 1) = 1 - psi
    assert abs(share - 0.7) < 0.02
    assert math.isclose(out.mean().item(), 2.0, abs_tol=0.05)  # E[output] = deep


def test_segmentor_constant_logit_and_gate():
    torch.manual_seed(0)
    seg = SMPSegmentor(
        arch='Unet',
        encoder_name='resnet18',
        num_classes=4,
        decoder_channels=(32, 16, 16, 16, 8),
        insertions=dict(
            background=dict(type='ConstantLogit', index=0, value=1.0),
            gate=dict(type='ShallowGate', psi=0.3, in_index=2, channels=8),
        ),
    )
    x = torch.randn(2, 3, 64, 64)
    out = seg(x)
    assert out.shape == (2, 4, 64, 64) and bool((out[:, 0] == 1.0).all())
    assert seg.net.segmentation_head[0].out_channels == 3
    assert seg.constant_logit == (0, 1.0)
    seg.eval()
    assert torch.equal(seg(x), seg(x))  # the gate is deterministic in eval mode
    with pytest.raises(ValueError, match=r'ConstantLogit\(index=4\)'):
        SMPSegmentor(num_classes=4, insertions=dict(bg=dict(type='ConstantLogit', index=4)))
    with pytest.raises(TypeError, match='rate'):
        SMPSegmentor(num_classes=4, insertions=dict(gate=dict(type='ShallowGate', rate=0.3)))
