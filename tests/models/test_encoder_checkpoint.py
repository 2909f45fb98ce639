"""Local SSL checkpoints: each layout written here from a tiny encoder, loaded into a fresh
segmentor, and the encoder's weights compared with the saved ones."""

import argparse

import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

from uda.models import SMPSegmentor
from uda.models.encoder_checkpoint import LAYOUTS, load_encoder_checkpoint

VIT = dict(
    arch='DPT',
    encoder_name='tu-vit_tiny_patch16_224',
    decoder_intermediate_channels=(8, 8, 8, 8),
    decoder_fusion_channels=8,
    num_classes=3,
)


def _seg(**kw):
    torch.manual_seed(int(kw.pop('seed', 0)))
    return SMPSegmentor(**{'arch': 'Unet', 'num_classes': 3, **kw})


def _inner(seg):
    """The module whose names an SSL file uses (the timm model of a tu- encoder)."""
    enc = seg.net.encoder
    return enc.model if hasattr(enc, 'model') else enc


def _assert_loaded(seg, saved, skip=()):
    own = _inner(seg).state_dict()
    checked = 0
    for k, v in saved.items():
        if k in own and k not in skip:
            assert torch.equal(own[k], v), k
            checked += 1
    assert checked > 0.9 * len([k for k in own if not k.endswith('num_batches_tracked')])


def _bare(seg, drop_head=True):
    """A torchvision-named ResNet state dict with an fc head, as SSL frameworks hold it."""
    sd = {k: v.clone() for k, v in _inner(seg).state_dict().items()}
    if not drop_head:
        sd['fc.weight'], sd['fc.bias'] = torch.randn(10, 512), torch.randn(10)
    return sd


def _few(sd):
    """A few entries: the momentum / student copies SSL files also hold (kept small: file I/O
    dominates these tests)."""
    return list(sd.items())[:3]


# resnet18 (smp's own encoder: torchvision names) in every CNN layout
CNN_LAYOUTS = {
    'moco_v2': lambda sd: {
        'state_dict': {
            **{f'module.encoder_q.{k}': v for k, v in sd.items()},
            **{f'module.encoder_k.{k}': v + 1 for k, v in _few(sd)},
            'module.queue': torch.randn(128, 16),
        },
        'arch': 'resnet18',
    },
    'moco_v3': lambda sd: {
        'state_dict': {
            **{f'module.base_encoder.{k}': v for k, v in sd.items()},
            **{f'module.momentum_encoder.{k}': v - 1 for k, v in _few(sd)},
            'module.predictor.0.weight': torch.randn(4, 4),
        }
    },
    'dino': lambda sd: {
        'teacher': {
            **{f'backbone.{k}': v for k, v in sd.items()},
            'head.last_layer.weight': torch.randn(8, 4),
        },
        'student': {f'module.backbone.{k}': v + 1 for k, v in _few(sd)},
        'args': argparse.Namespace(arch='resnet18', out_dim=8),
        'epoch': 3,
    },
    'byol': lambda sd: {
        'state_dict': {
            **{f'backbone.{k}': v for k, v in sd.items()},
            **{f'momentum_backbone.{k}': v + 1 for k, v in _few(sd)},
            'projector.0.weight': torch.randn(4, 4),
            'predictor.0.weight': torch.randn(4, 4),
        },
        'hyper_parameters': {'method': 'byol'},
    },
    'simclr': lambda sd: {
        **{f'encoder.{k}': v for k, v in sd.items()},
        'projector.0.weight': torch.randn(4, 4),
    },
    'timm': lambda sd: {'state_dict': sd, 'epoch': 1, 'arch': 'resnet18'},
}


def test_cnn_layouts_load_the_saved_weights(tmp_path):
    """resnet18 in each CNN layout, named and detected ('auto'); heads are left out."""
    src = _seg(encoder_name='resnet18', seed=1)
    sd = _bare(src, drop_head=False)
    fresh = _seg(encoder_name='resnet18', seed=2)
    assert not torch.equal(fresh.net.encoder.conv1.weight, src.net.encoder.conv1.weight)
    init = {k: v.clone() for k, v in fresh.net.encoder.state_dict().items()}
    for layout, write in CNN_LAYOUTS.items():
        path = tmp_path / f'{layout}.pth'
        torch.save(write(sd), path)
        for given in (layout, 'auto'):
            fresh.net.encoder.load_state_dict(init)
            report = load_encoder_checkpoint(fresh.net.encoder, str(path), layout=given)
            _assert_loaded(fresh, sd)
            assert report.share == 1.0 and not report.missing, (layout, given)
            assert 'fc.weight' not in report.unexpected, (layout, given)
            # simclr's bare 'encoder.' prefix is also byol-readable; both load the same weights
            assert given == layout or report.layout.endswith(layout) or layout == 'simclr'


def test_tu_cnn_and_uda_layout(tmp_path):
    """tu-resnet18: SSL files use the timm model's names; a uda file the encoder's own."""
    src = _seg(encoder_name='tu-resnet18', seed=1)
    sd = _bare(src, drop_head=False)
    torch.save(
        {'state_dict': {f'module.encoder_q.{k}': v for k, v in sd.items()}}, tmp_path / 'm.pth'
    )
    seg = _seg(encoder_name='tu-resnet18', encoder_checkpoint=dict(file=str(tmp_path / 'm.pth')))
    _assert_loaded(seg, sd)
    assert seg.checkpoint_report.layout == 'auto -> moco_v2'
    # uda: exactly segmentor.net.encoder.state_dict() (tools/pretrain.py), zero missing keys
    enc_sd = {k: v.clone() for k, v in src.net.encoder.state_dict().items()}
    torch.save({'state_dict': enc_sd}, tmp_path / 'u.pth')
    seg = _seg(encoder_name='tu-resnet18', encoder_checkpoint=dict(file=str(tmp_path / 'u.pth')))
    assert seg.checkpoint_report.layout == 'auto -> uda'
    assert not seg.checkpoint_report.missing and not seg.checkpoint_report.unexpected
    for k, v in seg.net.encoder.state_dict().items():
        assert torch.equal(v, enc_sd[k]), k
    # a tools/train.py checkpoint: the student's encoder
    train_ckpt = {f'student.net.encoder.{k}': v for k, v in enc_sd.items()}
    train_ckpt['student.net.decoder.w'] = torch.zeros(2)
    torch.save({'state_dict': train_ckpt, 'meta': {'iter': 4}}, tmp_path / 't.pth')
    report = load_encoder_checkpoint(
        _seg(encoder_name='tu-resnet18').net.encoder, str(tmp_path / 't.pth')
    )
    assert report.layout == 'auto -> uda' and report.prefix == 'student.net.encoder.'
    assert report.share == 1.0 and not report.unexpected


def test_vit_dino_teacher_and_mae_resample_the_position_embedding(tmp_path):
    """DINO / MAE ViT files at 224 px (14 x 14 grid) into a DPT whose grid is 4 x 4."""
    big = _seg(**{**VIT, 'encoder_kwargs': dict(img_size=224)}, seed=1)
    sd = {k: v.clone() for k, v in _inner(big).state_dict().items()}
    assert sd['pos_embed'].shape == (1, 1 + 14 * 14, 192)
    torch.save(
        {
            'teacher': {
                **{f'backbone.{k}': v for k, v in sd.items()},
                'head.mlp.0.weight': torch.randn(2, 2),
            },
            'student': {f'module.backbone.{k}': v + 1 for k, v in sd.items()},
            'args': argparse.Namespace(arch='vit_tiny'),
        },
        tmp_path / 'dino.pth',
    )
    mae = {
        **sd,
        'head.weight': torch.randn(10, 192),
        'decoder_embed.weight': torch.randn(4, 192),
        'mask_token': torch.randn(1, 1, 192),
    }
    torch.save({'model': mae, 'args': argparse.Namespace(model='mae_vit')}, tmp_path / 'mae.pth')
    want_pos = resample_abs_pos_embed(sd['pos_embed'], new_size=(4, 4), num_prefix_tokens=1)
    for name, layout in (('dino.pth', 'dino'), ('mae.pth', 'mae')):
        seg = _seg(
            **{**VIT, 'encoder_kwargs': dict(img_size=64)},
            seed=2,
            encoder_checkpoint=dict(file=str(tmp_path / name), layout=layout),
        )
        _assert_loaded(seg, sd, skip=('pos_embed',))
        assert torch.allclose(_inner(seg).pos_embed, want_pos, atol=1e-6)
        assert seg(torch.randn(2, 3, 64, 96)).shape == (2, 3, 64, 96)
    # DINO's student: checkpoint_key='student' (module.backbone.)
    seg = _seg(
        **{**VIT, 'encoder_kwargs': dict(img_size=64)},
        encoder_checkpoint=dict(
            file=str(tmp_path / 'dino.pth'), layout='dino', checkpoint_key='student'
        ),
    )
    assert torch.equal(_inner(seg).blocks[0].attn.qkv.weight, sd['blocks.0.attn.qkv.weight'] + 1)


def test_dinov2_registers_mask_token_and_patch_14(tmp_path):
    """DINOv2 teacher file (patch 14, 4 registers, pos_embed with the class position,
    mask_token, chunked blocks) into a patch-16 DPT: timm converts and resamples."""
    kw = dict(VIT, encoder_name='tu-vit_small_patch14_reg4_dinov2')
    torch.manual_seed(1)
    ref = timm.create_model('vit_small_patch14_reg4_dinov2', img_size=56, num_classes=0)
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    # The DINOv2 repo's names: register_tokens, pos_embed over [cls + patches], chunked blocks.
    d2 = {k: v for k, v in sd.items() if k not in ('reg_token', 'pos_embed', 'cls_token')}
    d2 = {
        (
            k.replace('blocks.', f'blocks.{int(k.split(".")[1]) // 6}.', 1)
            if k.startswith('blocks.')
            else k
        ): v
        for k, v in d2.items()
    }
    d2['register_tokens'] = sd['reg_token']
    d2['cls_token'] = sd['cls_token']
    d2['pos_embed'] = torch.cat([torch.zeros(1, 1, 384), sd['pos_embed']], 1)
    d2['mask_token'] = torch.zeros(1, 384)
    torch.save(
        {
            'teacher': {
                **{f'backbone.{k}': v for k, v in d2.items()},
                'dino_head.mlp.0.weight': torch.randn(2, 2),
            }
        },
        tmp_path / 'teacher_checkpoint.pth',
    )
    with pytest.raises(ValueError, match='patch_size=16'):
        _seg(**kw)
    seg = _seg(
        **{**kw, 'encoder_kwargs': dict(img_size=64, patch_size=16)},
        seed=2,
        encoder_checkpoint=dict(file=str(tmp_path / 'teacher_checkpoint.pth'), layout='dinov2'),
    )
    vit = _inner(seg)
    assert torch.equal(vit.reg_token, sd['reg_token'])
    assert torch.equal(vit.blocks[7].mlp.fc1.weight, sd['blocks.7.mlp.fc1.weight'])
    assert vit.patch_embed.proj.weight.shape[-1] == 16  # resampled 14 -> 16
    assert not seg.checkpoint_report.missing
    assert seg(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_wrong_keys_fail_loudly_with_file_layout_and_fix(tmp_path):
    torch.save({'state_dict': {'foo.weight': torch.randn(3, 3)}}, tmp_path / 'x.pth')
    with pytest.raises(ValueError, match=r'x\.pth.*layout') as err:
        _seg(encoder_name='resnet18', encoder_checkpoint=dict(file=str(tmp_path / 'x.pth')))
    assert 'revise_keys' in str(err.value) and 'min_matched' in str(err.value)
    # half the weights: below min_matched=0.9, accepted with min_matched=0.4
    sd = _bare(_seg(encoder_name='resnet18'))
    half = dict(list(sd.items())[: len(sd) // 2])
    torch.save(half, tmp_path / 'half.pth')
    with pytest.raises(ValueError, match='min_matched=0.9'):
        _seg(encoder_name='resnet18', encoder_checkpoint=dict(file=str(tmp_path / 'half.pth')))
    seg = _seg(
        encoder_name='resnet18',
        encoder_checkpoint=dict(file=str(tmp_path / 'half.pth'), min_matched=0.4),
    )
    assert seg.checkpoint_report.missing and 0.4 < seg.checkpoint_report.share < 0.9


def test_shape_mismatch_unknown_layout_and_missing_file_are_errors(tmp_path):
    sd = _bare(_seg(encoder_name='resnet34'))  # same names as resnet18, more blocks; shapes agree
    sd['conv1.weight'] = torch.randn(64, 3, 3, 3)
    torch.save(sd, tmp_path / 'r.pth')
    with pytest.raises(ValueError, match='wrong shape'):
        load_encoder_checkpoint(
            _seg(encoder_name='resnet18').net.encoder, str(tmp_path / 'r.pth'), min_matched=0.5
        )
    with pytest.raises(ValueError, match='layout'):
        load_encoder_checkpoint(
            _seg(encoder_name='resnet18').net.encoder, str(tmp_path / 'r.pth'), layout='swav'
        )
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        _seg(encoder_name='resnet18', encoder_checkpoint=dict(file=str(tmp_path / 'nothere.pth')))
    with pytest.raises(ValueError, match='file'):
        _seg(encoder_name='resnet18', encoder_checkpoint=dict(layout='dino'))
    assert set(LAYOUTS) >= {
        'uda',
        'dino',
        'dinov2',
        'moco_v2',
        'moco_v3',
        'mae',
        'byol',
        'simclr',
        'timm',
    }
