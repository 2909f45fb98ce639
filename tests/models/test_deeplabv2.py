"""DeepLab-v2: ASPP of four dilated convolutions on smp encoders at output stride 8."""

import pytest
import segmentation_models_pytorch as smp
import torch

from uda.models.deeplabv2 import ASPPv2, DeepLabV2
from uda.registry import MODELS


@pytest.mark.parametrize('encoder', ['resnet18', 'vgg16'])
def test_segmentor_builds_at_stride_8(encoder):
    seg = MODELS.build(
        dict(
            type='SMPSegmentor',
            arch='DeepLabV2',
            encoder_name=encoder,
            num_classes=5,
            aux_head=dict(in_index=-2, channels=8),
        )
    )
    assert isinstance(seg.net, DeepLabV2)
    x = torch.zeros(1, 3, 64, 96)
    out = seg(x, return_features=True, return_aux=True)
    assert out['logits'].shape == (1, 5, 64, 96)
    assert out['decoder'].shape == (1, 5, 8, 12)  # output stride 8
    assert out['features'][-1].shape[-2:] == (8, 12)


@pytest.mark.slow
@pytest.mark.parametrize('encoder', ['resnet50', 'resnet101'])
def test_deep_resnets_build(encoder):
    net = smp.create_model('deeplabv2', encoder_name=encoder, encoder_weights=None, classes=19)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 19, 4, 4)


def test_aspp_sums_four_dilated_branches():
    head = ASPPv2(4, 3)
    assert [c.dilation for c in head.branches] == [(r, r) for r in (6, 12, 18, 24)]
    x = torch.randn(1, 4, 30, 30)
    expected = sum(c(x) for c in head.branches)
    assert torch.allclose(head([x]), expected, atol=1e-6)


def test_advent_aspp_aux_head_on_layer3():
    """ADVENT's multi-level classifier: ASPP-v2 (four dilated 3x3 convs) on layer3."""
    k = 5
    seg = MODELS.build(
        dict(
            type='SMPSegmentor',
            arch='DeepLabV2',
            encoder_name='resnet18',
            encoder_weights=None,
            num_classes=k,
            aux_head=dict(type='aspp', in_index=-2),
        )
    )
    aux = seg.heads['aux']
    assert isinstance(aux, ASPPv2)
    assert [c.dilation for c in aux.branches] == [(r, r) for r in (6, 12, 18, 24)]
    in_ch = seg.encoder_channels[-2]
    assert in_ch == 256  # resnet18 layer3 (1024 for resnet101, as ADVENT's layer5)
    assert sum(p.numel() for p in aux.parameters()) == 4 * (in_ch * k * 3 * 3 + k)
    out = seg(torch.randn(2, 3, 32, 32), return_aux=True)
    assert out['aux_logits'].shape == (2, k, 32, 32)


def test_deeplabv2_aux_params_builds_smp_classification_head():
    net = smp.create_model(
        'deeplabv2',
        encoder_name='resnet18',
        encoder_weights=None,
        classes=3,
        aux_params=dict(classes=4),
    )
    masks, labels = net(torch.zeros(2, 3, 32, 32))
    assert masks.shape == (2, 3, 4, 4) and labels.shape == (2, 4)


def test_bad_output_stride():
    with pytest.raises(ValueError, match='output_stride'):
        DeepLabV2('resnet18', output_stride=32)


def test_caffe_style_moves_the_stride_and_ceils_the_pool():
    """The Caffe-ported ResNet of the DeepLab-v2 references (visinf/da-sac models/deeplabv2.py)."""
    net = DeepLabV2('resnet50', classes=3, encoder_style='caffe')
    block = net.encoder.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    assert net.encoder.maxpool.ceil_mode
    tv = DeepLabV2('resnet50', classes=3)
    assert tv.encoder.layer2[0].conv2.stride == (2, 2) and not tv.encoder.maxpool.ceil_mode
    tv.load_state_dict(net.state_dict())  # the same names and shapes
    x = torch.randn(1, 3, 32, 40)
    with torch.no_grad():  # after conv1 16 x 20; the pool ceils to 9 x 11 (torchvision: 8 x 10)
        assert net.eval()(x).shape == (1, 3, 5, 6)
        assert tv.eval()(x).shape == (1, 3, 4, 5)
        y = torch.randn(1, 3, 33, 41)  # same sizes both ways: the stride placement still differs
        assert not torch.allclose(net(y), tv(y))
    with pytest.raises(ValueError, match='bottleneck ResNet'):
        DeepLabV2('resnet18', encoder_style='caffe')
    with pytest.raises(ValueError, match="'torchvision' or 'caffe'"):
        DeepLabV2('resnet18', encoder_style='pytorch')


def test_summed_branches_sums_the_first_n():
    """AdaptSegNet's classifier sums only the dilation-6 and -12 branches."""
    aspp = ASPPv2(4, 3, summed_branches=2)
    x = torch.randn(1, 4, 30, 30)
    with torch.no_grad():
        want = aspp.branches[0](x) + aspp.branches[1](x)
        torch.testing.assert_close(aspp(x), want)
        assert not torch.allclose(ASPPv2(4, 3)(x), want)
    with pytest.raises(ValueError, match='summed_branches=5'):
        ASPPv2(4, 3, summed_branches=5)
    seg = MODELS.build(
        dict(
            type='SMPSegmentor',
            arch='DeepLabV2',
            encoder_name='resnet18',
            num_classes=3,
            summed_branches=2,
            aux_head=dict(type='aspp', in_index=-2, summed_branches=2),
        )
    )
    assert seg.net.decoder.summed_branches == 2 and seg.heads['aux'].summed_branches == 2


def test_preprocessor_bgr_channel_order():
    """BGR networks (ADVENT / AdaptSegNet): flip, subtract the BGR mean; denormalize gives RGB."""
    from uda.models.data_preprocessor import SegDataPreprocessor

    rgb = torch.rand(1, 3, 4, 4) * 255
    pre = SegDataPreprocessor(mean=(104.0, 117.0, 123.0), std=(1, 1, 1), channel_order='bgr')
    out = pre.normalize(rgb)
    torch.testing.assert_close(out[:, 0], rgb[:, 2] - 104.0)  # blue first
    torch.testing.assert_close(out[:, 2], rgb[:, 0] - 123.0)
    torch.testing.assert_close(pre.denormalize(out), rgb)
    with pytest.raises(ValueError, match="'rgb' or 'bgr'"):
        SegDataPreprocessor(channel_order='BGRA')
