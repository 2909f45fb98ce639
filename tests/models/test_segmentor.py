import pytest
import torch
import torch.nn.functional as F

from uda.models import SegDataPreprocessor, SMPSegmentor
from uda.models.segmentor import architecture_only


@pytest.mark.parametrize('arch', ['Unet', 'FPN'])
def test_logits_at_input_size_features_and_aux(arch):
    net = SMPSegmentor(
        arch=arch, encoder_name='resnet18', num_classes=5, aux_head=dict(in_index=-2, channels=8)
    )
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


def test_forward_is_decode_of_extract_feat_upsampled():
    torch.manual_seed(0)
    net = SMPSegmentor(
        arch='DeepLabV2',
        encoder_name='resnet18',
        num_classes=3,
        aux_head=dict(in_index=-2, channels=8),
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = net.extract_feat(x)
    raw = net.decode(feats)
    assert raw.shape == (2, 3, 4, 4)  # stride 8: forward must upsample
    up = F.interpolate(raw, (32, 32), mode='bilinear', align_corners=False)
    out = net(x, return_features=True, return_aux=True)
    assert torch.allclose(net(x), up, atol=1e-6)
    assert torch.allclose(net.decode(feats, (32, 32)), up, atol=1e-6)
    assert torch.allclose(out['aux_logits'], net.head('aux', feats, (32, 32)), atol=1e-6)
    assert net.head('aux', feats).shape == (2, 3, 4, 4)  # stage -2 (layer3) at stride 8
    assert set(out) == {'logits', 'features', 'decoder', 'aux_logits'}


def test_cls_head_from_smp_aux_params_is_kept_and_trained():
    net = SMPSegmentor(
        arch='Unet', encoder_name='resnet18', num_classes=3, aux_params=dict(classes=4, dropout=0.0)
    )
    assert 'cls' in net.heads and net.net.classification_head is None  # moved, not duplicated
    x = torch.randn(2, 3, 32, 32)
    out = net(x, return_cls=True)
    assert set(out) == {'logits', 'cls_logits'} and out['cls_logits'].shape == (2, 4)
    assert torch.allclose(out['cls_logits'], net.head('cls', net.extract_feat(x)))
    out['cls_logits'].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.heads['cls'].parameters())
    assert net.net.encoder.conv1.weight.grad is not None  # the encoder learns from it too
    assert torch.equal(net(x), out['logits'])  # the plain forward still returns logits


def test_align_corners_controls_logit_and_aux_upsampling():
    torch.manual_seed(0)
    kw = dict(
        arch='DeepLabV2',
        encoder_name='resnet18',
        num_classes=3,
        aux_head=dict(type='aspp', in_index=-2),
    )
    a = SMPSegmentor(align_corners=True, **kw).eval()
    b = SMPSegmentor(align_corners=False, **kw).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    raw = a.decode(a.extract_feat(x))
    assert raw.shape == (2, 3, 4, 4)
    ref = F.interpolate(raw, (32, 32), mode='bilinear', align_corners=True)
    out_a = a(x, return_aux=True)
    assert torch.allclose(out_a['logits'], ref, atol=1e-6)
    # align_corners=True keeps the corner pixels of the stride-8 grid; False does not.
    assert torch.allclose(out_a['logits'][..., 0, 0], raw[..., 0, 0], atol=1e-6)
    out_b = b(x, return_aux=True)
    assert not torch.allclose(out_a['logits'], out_b['logits'], atol=1e-4)
    assert not torch.allclose(out_a['aux_logits'], out_b['aux_logits'], atol=1e-4)
    aux_raw = a.head('aux', a.extract_feat(x))
    assert torch.allclose(
        out_a['aux_logits'],
        F.interpolate(aux_raw, (32, 32), mode='bilinear', align_corners=True),
        atol=1e-6,
    )


def test_missing_and_unknown_heads_name_the_config_key():
    net = SMPSegmentor(encoder_name='resnet18', num_classes=3)
    feats = net.extract_feat(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match='aux_params'):
        net(torch.randn(2, 3, 32, 32), return_cls=True)
    with pytest.raises(ValueError, match='aux_head'):
        net.head('aux', feats)
    with pytest.raises(ValueError, match="no head 'seg'.*aux_head.*aux_params"):
        net.head('seg', feats)


def test_aux_head_config_errors():
    with pytest.raises(ValueError, match="'conv' or 'aspp'"):
        SMPSegmentor(encoder_name='resnet18', aux_head=dict(type='psp'))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['rates'\]"):
        SMPSegmentor(encoder_name='resnet18', aux_head=dict(type='conv', rates=(6,)))


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


def test_toy_segmentor_has_the_segmentor_interface():
    from uda.registry import MODELS

    toy = MODELS.build(dict(type='ToySegmentor', num_classes=3))
    x = torch.randn(2, 3, 32, 32)
    feats = toy.extract_feat(x)
    out = toy(x, return_features=True, return_aux=True, return_cls=True)
    assert torch.equal(out['logits'], toy.decode(feats)) and torch.equal(out['logits'], toy(x))
    assert torch.equal(out['aux_logits'], out['logits'])  # as before the interface existed
    assert torch.allclose(out['cls_logits'], out['logits'].mean((2, 3)))
    assert torch.equal(toy.head('cls', feats), out['cls_logits'])
    with pytest.raises(ValueError, match='no head'):
        toy.head('seg', feats)


# ------------------------------------------------------------------ encoders (issue 12)
TINY_DPT = dict(
    arch='DPT',
    encoder_name='tu-vit_tiny_patch16_224',
    decoder_intermediate_channels=(8, 8, 8, 8),
    decoder_fusion_channels=8,
    num_classes=3,
)


@pytest.mark.parametrize(
    'kw',
    [
        dict(arch='Unet', encoder_name='resnet18'),
        dict(arch='Segformer', encoder_name='mit_b0'),
        dict(arch='FPN', encoder_name='tu-resnet18'),
        dict(TINY_DPT, encoder_kwargs=dict(img_size=32)),  # not the ViT's 224: resampled
    ],
    ids=['resnet18', 'mit_b0', 'tu-resnet18', 'tu-vit+dpt'],
)
def test_encoders_give_logits_at_input_size_and_decode_of_extract_feat(kw):
    kw = {'num_classes': 3, **kw}
    net = SMPSegmentor(**kw).eval()
    x = torch.randn(2, 3, 64, 96)
    feats = net.extract_feat(x)
    assert [f.shape[1] for f in feats] == net.encoder_channels
    logits = net(x)
    assert logits.shape == (2, 3, 64, 96)
    assert torch.allclose(net.decode(feats, (64, 96)), logits, atol=1e-5)


def test_vit_dpt_prefix_tokens_pruned_head_and_size_checks():
    net = SMPSegmentor(**TINY_DPT).eval()
    vit = net.net.encoder.model
    assert isinstance(vit.head, torch.nn.Identity) and isinstance(vit.norm, torch.nn.Identity)
    x = torch.randn(2, 3, 64, 64)
    feats = net.extract_feat(x)
    assert [f.shape for f in feats] == [(2, 192, 4, 4)] * 4
    assert all(t.shape == (2, 1, 192) for t in feats.prefix_tokens)  # the class token
    # decoder_readout='cat' reads the class token: a plain list has lost it
    with pytest.raises(ValueError, match="decoder_readout='ignore'"):
        net.decode(list(feats))
    ignore = SMPSegmentor(**TINY_DPT, decoder_readout='ignore').eval()
    assert ignore.decode(list(ignore.extract_feat(x))).shape[-2:] == (64, 64)
    with pytest.raises(ValueError, match='size_divisor=32'):
        net(torch.randn(2, 3, 48, 64))  # a 3 x 4 grid: DPT halves and doubles it
    with pytest.raises(ValueError, match="arch='DPT'"):
        SMPSegmentor(arch='UPerNet', encoder_name='tu-vit_tiny_patch16_224')
    with pytest.raises(ValueError, match='encoder_kwargs'):
        SMPSegmentor(encoder_name='resnet18', encoder_kwargs=dict(img_size=64))


# ------------------------------------------------------------------ freezing
def test_freeze_encoder_keeps_its_bn_in_eval_and_trains_the_decoder():
    net = SMPSegmentor(encoder_name='resnet18', num_classes=3, freeze=dict(encoder=True))
    net.train()
    enc = net.net.encoder
    assert all(not p.requires_grad for p in enc.parameters())
    assert all(p.requires_grad for p in net.net.decoder.parameters())
    assert not enc.bn1.training and net.net.decoder.training
    stats = enc.bn1.running_mean.clone()
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert torch.equal(enc.bn1.running_mean, stats)
    assert all(p.grad is None for p in enc.parameters())
    assert all(p.grad is not None for p in net.net.segmentation_head.parameters())


def test_freeze_stages_and_patterns():
    net = SMPSegmentor(encoder_name='resnet18', num_classes=3, freeze=dict(stages=1))
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    # mmseg ResNet frozen_stages=1: the stem and layer1
    assert 'net.encoder.conv1.weight' in frozen and 'net.encoder.layer1.0.conv1.weight' in frozen
    assert not any('layer2' in n or 'decoder' in n for n in frozen)
    net = SMPSegmentor(**TINY_DPT, freeze=dict(stages=0, patterns=[r'blocks\.[0-2]\.']))
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert 'net.encoder.model.pos_embed' in frozen and 'net.encoder.model.cls_token' in frozen
    assert 'net.encoder.model.blocks.2.attn.qkv.weight' in frozen
    assert 'net.encoder.model.blocks.3.attn.qkv.weight' not in frozen
    with pytest.raises(ValueError, match='matches no parameter'):
        SMPSegmentor(encoder_name='resnet18', freeze=dict(patterns=['nothing_like_this']))
    with pytest.raises(ValueError, match='unknown key'):
        SMPSegmentor(encoder_name='resnet18', freeze=dict(encoders=True))


def test_architecture_only_rebuilds_without_initial_weights(tmp_path):
    """tools/test.py and the exporters load every trained weight after building: the SSL
    encoder file (gone here) is not read and no ImageNet download starts."""
    cfg = dict(
        arch='Unet',
        encoder_name='resnet18',
        encoder_weights='imagenet',
        encoder_checkpoint=dict(file=str(tmp_path / 'moved_away.pth')),
        num_classes=3,
        decoder_channels=(16, 8, 8, 8, 8),
    )
    with pytest.raises(FileNotFoundError):
        SMPSegmentor(**dict(cfg, encoder_weights=None))
    arch = architecture_only(cfg)
    assert 'encoder_checkpoint' not in arch and arch['encoder_weights'] is None
    assert cfg['encoder_weights'] == 'imagenet' and 'encoder_checkpoint' in cfg  # a copy
    net = SMPSegmentor(**arch)
    assert net.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
