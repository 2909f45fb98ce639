"""Discriminators build from config, with the reference layer sizes and output strides."""

import pytest
import torch
import torch.nn as nn

from uda.registry import MODELS


def test_fc_discriminator_reference_layout():
    d = MODELS.build(dict(type='FCDiscriminator', in_channels=19))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    acts = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 4 and all(a.negative_slope == 0.2 for a in acts)
    assert d(torch.randn(2, 19, 64, 128)).shape == (2, 1, 2, 4)


def test_discriminator_sizes_from_config():
    d = MODELS.build(dict(type='FCDiscriminator', in_channels=5, channels=(8, 16)))
    assert [c.out_channels for c in d.modules() if isinstance(c, nn.Conv2d)] == [8, 16, 1]
    assert d(torch.randn(1, 5, 32, 32)).shape == (1, 1, 4, 4)
    f = MODELS.build(
        dict(type='FeatureDiscriminator', in_channels=7, channels=(12,), kernel_size=3)
    )
    assert f(torch.randn(2, 7, 5, 6)).shape == (2, 1, 5, 6)
    with pytest.raises(ValueError, match='kernel_size'):
        MODELS.build(dict(type='FeatureDiscriminator', in_channels=7, kernel_size=5))
