"""``train_only``: the inverse of ``freeze`` (TENT trains the normalisation layers only)."""

from __future__ import annotations

import pytest
import torch.nn as nn

from uda.models.segmentor import SMPSegmentor
from uda.models.trainable import NORM_TYPES, train_only_names


def tiny(encoder: str = 'resnet18', **kw) -> SMPSegmentor:
    return SMPSegmentor(
        arch='Unet', encoder_name=encoder, num_classes=3, decoder_channels=(8, 8, 8, 8, 8), **kw
    )


@pytest.mark.parametrize('encoder', ['resnet18', 'mit_b0'])
def test_norm_selects_every_normalisation_layer_and_nothing_else(encoder):
    net = tiny(encoder, train_only=dict(norm=True))
    norms = {
        f'{prefix}.{n}'
        for prefix, m in net.named_modules()
        if isinstance(m, NORM_TYPES)
        for n, _ in m.named_parameters()
    }
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == norms
    # The decoder's BatchNorms (named by position, not 'bn') are in; a LayerNorm encoder's too.
    assert any(n.startswith('net.decoder.') for n in trainable)
    if encoder == 'mit_b0':
        assert any(isinstance(m, nn.LayerNorm) for m in net.net.encoder.modules())
        assert any('norm' in n and n.startswith('net.encoder.') for n in trainable)
    assert set(net.frozen_names) == {n for n, _ in net.named_parameters()} - norms
    # Their BatchNorms stay in training mode (not the frozen-layer eval mode).
    net.train()
    assert all(m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d))


def test_patterns_and_bad_specs():
    net = tiny(train_only=['segmentation_head'])
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {
        'net.segmentation_head.0.weight',
        'net.segmentation_head.0.bias',
    }
    with pytest.raises(ValueError, match='matches no parameter'):
        train_only_names(net, ['no_such_layer'])
    with pytest.raises(ValueError, match='unknown key'):
        train_only_names(net, dict(norms=True))
    with pytest.raises(TypeError, match='list of regular expressions'):
        train_only_names(net, 'bn')
