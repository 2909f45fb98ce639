"""DAFormer (MiT + context-aware fusion head) as an smp architecture of SMPSegmentor.

The equality with the reference network (lhoyer/DAFormer) on converted checkpoints is tested
in tests/models/layouts/test_layout_daformer.py.
"""

import pytest
import torch
import torch.nn as nn

from uda.models.daformer import DAFormer, DepthwiseSeparableConvModule
from uda.registry import MODELS


def _build(**kw):
    cfg = dict(type='SMPSegmentor', arch='DAFormer', encoder_name='mit_b0', num_classes=5)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_segmentor_builds_daformer_with_stride4_fusion():
    seg = _build()
    assert isinstance(seg.net, DAFormer)
    out = seg(torch.zeros(2, 3, 64, 96), return_features=True)
    assert out['logits'].shape == (2, 5, 64, 96)
    assert out['decoder'].shape == (2, 256, 16, 24)  # fused at the first stage (stride 4)
    fusion = seg.net.decoder.fuse_layer
    # sepaspp: a 1x1 ConvModule, then depthwise-separable 3x3 at dilations 6, 12, 18
    assert fusion.aspp_modules[0].conv.kernel_size == (1, 1)
    for m, d in zip(fusion.aspp_modules[1:], (6, 12, 18)):
        assert isinstance(m, DepthwiseSeparableConvModule)
        assert m.depthwise_conv.conv.dilation == (d, d) and m.depthwise_conv.conv.groups == 1024
        assert m.pointwise_conv.conv.kernel_size == (1, 1)
    assert fusion.bottleneck.conv.in_channels == 4 * 256
    assert isinstance(seg.net.segmentation_head.dropout, nn.Dropout2d)
    assert seg.net.segmentation_head.dropout.p == 0.1


def test_any_input_size_and_other_encoders():
    seg = _build(encoder_name='resnet18', decoder_embed_dim=32, decoder_channels=16).eval()
    with torch.no_grad():
        assert seg(torch.zeros(1, 3, 50, 70)).shape == (1, 5, 50, 70)
    assert seg.net.decoder.embed_layers['3'].proj.in_features == 512


def test_classifier_initialised_as_mmseg():
    """conv_seg ~ N(0, 0.01) with zero bias (mmseg BaseDecodeHead init_cfg), ConvModule BN at
    1 / 0: not smp's Xavier head initialisation."""
    torch.manual_seed(0)
    head = _build(num_classes=19).net.segmentation_head.conv_seg
    assert head.bias.abs().max() == 0
    assert 0.007 < head.weight.std().item() < 0.013


def test_too_few_stages_is_an_error():
    with pytest.raises(ValueError, match='four encoder stages'):
        _build(encoder_name='resnet18', encoder_depth=3)


def test_builds_on_the_meta_device():
    """Key-and-shape checks of checkpoints build the network on the meta device; smp's MiT
    cannot be built there directly (.item() on its drop-path rates)."""
    with torch.device('meta'):
        seg = _build(encoder_name='mit_b1')
    assert all(p.device.type == 'meta' for p in seg.parameters())
    assert seg.net.encoder.patch_embed1.proj.weight.shape == (64, 3, 7, 7)
