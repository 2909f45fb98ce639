"""Golden values of the entropy map, MinEnt's loss, GAN losses, and the gradient reversal."""

import math

import pytest
import torch

from uda.losses import (
    domain_accuracy,
    entropy_loss,
    gan_loss,
    grad_reverse,
    pixel_entropy,
    weighted_self_information,
)


def _logits_of(probs):
    return torch.tensor(probs, dtype=torch.float64).log()


def test_weighted_self_information_golden_values():
    # Two classes, 1x2 pixels: p = (0.5, 0.5) and (0.25, 0.75); log2 C = 1.
    logits = _logits_of([[[[0.5, 0.25]], [[0.5, 0.75]]]])  # [1, 2, 1, 2]
    got = weighted_self_information(logits)
    # -p log2 p: 0.5 -> 0.5; 0.25 -> 0.5; 0.75 -> 0.75 * 0.4150375 = 0.3112781
    want = torch.tensor([[[[0.5, 0.5]], [[0.5, 0.3112781]]]], dtype=torch.float32)
    assert got.shape == (1, 2, 1, 2)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(pixel_entropy(logits), torch.tensor([[[1.0, 0.8112781]]]), atol=1e-6)
    assert entropy_loss(logits).item() == pytest.approx((1.0 + 0.8112781) / 2, abs=1e-6)


def test_entropy_normalised_by_log_classes():
    # Four classes: uniform -> 1; one-hot-ish -> ~0; (0.5, 0.5, 0, 0) -> log2(2) / log2(4).
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1e4, -1e4]])
    ent = pixel_entropy(logits.t().reshape(1, 4, 1, 3))
    assert torch.allclose(ent, torch.tensor([[[1.0, 0.0, 0.5]]]), atol=1e-6)
    assert torch.isfinite(ent).all()


def test_gan_losses_golden_values():
    pred = torch.tensor([[[[0.0, 2.0]]]])
    # BCE with logits against 1: log(1 + e^-x): x=0 -> log 2, x=2 -> 0.126928
    assert gan_loss(pred, 1.0, 'bce').item() == pytest.approx(
        (math.log(2) + 0.126928) / 2, abs=1e-5
    )
    # LSGAN: mean (x - 0)^2 = (0 + 4) / 2
    assert gan_loss(pred, 0.0, 'lsgan').item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match='use one of'):
        gan_loss(pred, 0.0, 'hinge')
    assert domain_accuracy(pred, 1.0, 'bce').item() == pytest.approx(0.5)  # logit 0 is not > 0
    assert domain_accuracy(pred, 0.0, 'lsgan').item() == pytest.approx(0.5)


def test_gradient_reversal_flips_gradients_exactly():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    (grad_plain,) = torch.autograd.grad((x * w).sum(), x)
    y = grad_reverse(x, 1.0)
    assert torch.equal(y, x)
    (grad_rev,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.equal(grad_rev, -grad_plain)
    (grad_half,) = torch.autograd.grad((grad_reverse(x, 0.5) * w).sum(), x)
    assert torch.equal(grad_half, -0.5 * grad_plain)
