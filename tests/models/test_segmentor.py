import pytest
import torch

from uda.models import SegDataPreprocessor, SMPSegmentor


@pytest.mark.parametrize('arch', ['Unet', 'FPN'])
def test_logits_at_input_size_features_and_aux(arch):
    net = SMPSegmentor(arch=arch, encoder_name='resnet18', num_classes=5,
                       aux_head=dict(in_index=-2, channels=8))
    x = torch.randn(2, 3, 64, 96)
    assert net(x).shape == (2, 5, 64, 96)
    out = net(x, return_features=True, return_aux=True)
    assert out['logits'].shape == (2, 5, 64, 96)
    assert out['aux_logits'].shape == (2, 5, 64, 96)
    assert [f.shape[1] for f in out['features']] == net.encoder_channels


def test_aux_without_head_is_a_clear_error():
    net = SMPSegmentor(encoder_name='resnet18', num_classes=3)
    with pytest.raises(ValueError, match='aux_head'):
        net(torch.randn(1, 3, 32, 32), return_aux=True)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match='SMPSegmentor'):
        SMPSegmentor(arch='Unett')


def test_preprocessor_normalises_and_pads():
    pre = SegDataPreprocessor(mean=(10, 10, 10), std=(2, 2, 2), size_divisor=8)
    img = torch.full((3, 5, 6), 14, dtype=torch.uint8)
    gt = torch.zeros(5, 6, dtype=torch.long)
    out = pre(dict(inputs=[img], data_samples=[dict(gt_sem_seg=gt)]))
    x = out['inputs']
    assert x.shape == (1, 3, 8, 8)
    assert torch.all(x[0, :, :5, :6] == 2.0) and torch.all(x[0, :, 5:, :] == 0)
    g = out['data_samples'][0]['gt_sem_seg']
    assert g.shape == (8, 8) and (g[5:] == 255).all() and (g[:5, :6] == 0).all()
    assert out['data_samples'][0]['pad_shape'] == (8, 8)
