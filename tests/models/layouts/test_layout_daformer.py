"""DAFormer / MIC checkpoints load into uda's DAFormer and give the reference's logits.

The reference network is re-implemented here in plain torch, following
lhoyer/DAFormer@e6f6e04 ``mmseg/models/backbones/mix_transformer.py`` (MiT),
``mmseg/models/decode_heads/daformer_head.py`` (``DAFormerHead``, ``ASPPWrapper``),
``segformer_head.py`` (``MLP``), ``aspp_head.py`` / ``sep_aspp_head.py`` (ASPP modules),
``decode_head.py`` (``cls_seg``) and mmcv 1.x ``ConvModule`` / ``DepthwiseSeparableConvModule``,
with their module names, so its ``state_dict`` is the published key-and-shape manifest. Random
weights (BatchNorm statistics included) are saved in the mmseg 0.x container
(``{'meta', 'state_dict', 'optimizer'}`` with ``model.*``, ``ema_model.*``, ``imnet_model.*``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from uda.models.layouts import ForeignCheckpointError, get_layout, load_foreign_checkpoint
from uda.models.layouts.daformer import (
    convert_daformer_state,
    daformer_segmentor,
    daformer_state,
)
from uda.registry import MODELS

# ---------------------------------------------------------------- reference: MiT (SegFormer)


class RefMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = RefDWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, H, W):
        return self.fc2(self.act(self.dwconv(self.fc1(x), H, W)))


class RefDWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(B, C, H, W))
        return x.flatten(2).transpose(1, 2)


class RefAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=True)
        self.kv = nn.Linear(dim, dim * 2, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        h = self.num_heads
        q = self.q(x).reshape(B, N, h, C // h).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x_ = x.permute(0, 2, 1).reshape(B, C, H, W)
            x_ = self.norm(self.sr(x_).reshape(B, C, -1).permute(0, 2, 1))
        else:
            x_ = x
        kv = self.kv(x_).reshape(B, -1, 2, h, C // h).permute(2, 0, 3, 1, 4)
        attn = ((q @ kv[0].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ kv[1]).transpose(1, 2).reshape(B, N, C))


class RefBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = RefMlp(dim, dim * 4)

    def forward(self, x, H, W):
        x = x + self.attn(self.norm1(x), H, W)
        return x + self.mlp(self.norm2(x), H, W)


class RefOverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)  # eps 1e-5: the patch embedding ignores norm_layer

    def forward(self, x):
        x = self.proj(x)
        _, _, H, W = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class RefMixVisionTransformer(nn.Module):
    """``mit_b0`` ... ``mit_b5``: widths, heads, depths, sr ratios as in mix_transformer.py."""

    def __init__(self, embed_dims, depths, num_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1)):
        super().__init__()
        chans = [3] + list(embed_dims)
        for i in range(4):
            setattr(
                self,
                f'patch_embed{i + 1}',
                RefOverlapPatchEmbed(
                    7 if i == 0 else 3, 4 if i == 0 else 2, chans[i], chans[i + 1]
                ),
            )
            blocks = nn.ModuleList(
                RefBlock(embed_dims[i], num_heads[i], sr_ratios[i]) for _ in range(depths[i])
            )
            setattr(self, f'block{i + 1}', blocks)
            setattr(self, f'norm{i + 1}', nn.LayerNorm(embed_dims[i], eps=1e-6))

    def forward(self, x):
        B = x.shape[0]
        outs = []
        for i in range(1, 5):
            x, H, W = getattr(self, f'patch_embed{i}')(x)
            for blk in getattr(self, f'block{i}'):
                x = blk(x, H, W)
            x = getattr(self, f'norm{i}')(x)
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs


# ---------------------------------------------------------------- reference: DAFormer head


class RefConvModule(nn.Module):
    """mmcv ConvModule with norm_cfg=BN, act_cfg=ReLU: conv (bias='auto' -> False), bn, ReLU."""

    def __init__(self, cin, cout, k, padding=0, dilation=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(
            cin, cout, k, padding=padding, dilation=dilation, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class RefDepthwiseSeparableConvModule(nn.Module):
    def __init__(self, cin, cout, k, dilation, padding):
        super().__init__()
        self.depthwise_conv = RefConvModule(cin, cin, k, padding, dilation, groups=cin)
        self.pointwise_conv = RefConvModule(cin, cout, 1)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class RefDepthwiseSeparableASPPModule(nn.ModuleList):
    """``ASPPModule`` (1x1 for dilation 1, else 3x3) with the dilated ones made separable."""

    def __init__(self, dilations, in_channels, channels):
        super().__init__()
        for d in dilations:
            if d == 1:
                self.append(RefConvModule(in_channels, channels, 1))
            else:
                self.append(RefDepthwiseSeparableConvModule(in_channels, channels, 3, d, d))

    def forward(self, x):
        return [m(x) for m in self]


class RefASPPWrapper(nn.Module):
    def __init__(self, in_channels, channels, dilations=(1, 6, 12, 18)):
        super().__init__()
        self.aspp_modules = RefDepthwiseSeparableASPPModule(dilations, in_channels, channels)
        self.bottleneck = RefConvModule(len(dilations) * channels, channels, 3, padding=1)

    def forward(self, x):
        return self.bottleneck(torch.cat(self.aspp_modules(x), dim=1))


class RefMLP(nn.Module):
    def __init__(self, input_dim, embed_dim):
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x):
        return self.proj(x.flatten(2).transpose(1, 2).contiguous())


class RefDAFormerHead(nn.Module):
    def __init__(self, in_channels, num_classes, channels=256, embed_dims=256):
        super().__init__()
        self.in_index = [0, 1, 2, 3]
        self.embed_layers = nn.ModuleDict(
            {str(i): RefMLP(c, embed_dims) for i, c in zip(self.in_index, in_channels)}
        )
        self.fuse_layer = RefASPPWrapper(4 * embed_dims, channels)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, x):
        n = x[-1].shape[0]
        os_size = x[0].size()[2:]
        _c = {}
        for i in self.in_index:
            _c[i] = self.embed_layers[str(i)](x[i])
            if _c[i].dim() == 3:
                _c[i] = (
                    _c[i].permute(0, 2, 1).contiguous().reshape(n, -1, x[i].shape[2], x[i].shape[3])
                )
            if _c[i].size()[2:] != os_size:
                _c[i] = F.interpolate(_c[i], size=os_size, mode='bilinear', align_corners=False)
        x = self.fuse_layer(torch.cat(list(_c.values()), dim=1))
        return self.conv_seg(self.dropout(x))


class RefEncoderDecoder(nn.Module):
    """mmseg ``EncoderDecoder.encode_decode``: head logits resized to the input (bilinear,
    align_corners=False)."""

    def __init__(self, embed_dims, depths, num_classes):
        super().__init__()
        self.backbone = RefMixVisionTransformer(embed_dims, depths)
        self.decode_head = RefDAFormerHead(embed_dims, num_classes)

    def forward(self, img):
        out = self.decode_head(self.backbone(img))
        return F.interpolate(out, size=img.shape[2:], mode='bilinear', align_corners=False)


class RefDACS(nn.Module):
    """The UDA module whose state dict mmcv saves: student, EMA teacher, ImageNet copy."""

    def __init__(self, embed_dims, depths, num_classes):
        super().__init__()
        self.model = RefEncoderDecoder(embed_dims, depths, num_classes)
        self.ema_model = RefEncoderDecoder(embed_dims, depths, num_classes)
        self.imnet_model = RefEncoderDecoder(embed_dims, depths, num_classes)


B0 = dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2))
B5 = dict(embed_dims=(64, 128, 320, 512), depths=(3, 6, 40, 3))
CLASSES = tuple(f'class{i}' for i in range(5))


def randomise(module: nn.Module, seed: int) -> None:
    """Random values in every weight and BatchNorm statistic (variances positive)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                t.fill_(int(torch.randint(0, 100, (), generator=g)))
            elif name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)


def daformer_file(path, dacs: nn.Module, with_ema: bool = True, with_imnet: bool = True) -> None:
    state = {f'model.{k}': v for k, v in dacs.model.state_dict().items()}
    if with_ema:
        state.update({f'ema_model.{k}': v for k, v in dacs.ema_model.state_dict().items()})
    if with_imnet:
        state.update({f'imnet_model.{k}': v for k, v in dacs.imnet_model.state_dict().items()})
    meta = dict(
        mmcv_version='1.3.7', time='Mon Nov  8 16:22:00 2021', exp_name='gta2cs_daformer',
        CLASSES=CLASSES, PALETTE=[[0, 0, 0]] * len(CLASSES), iter=40000, epoch=1,
    )  # fmt: skip
    torch.save(dict(meta=meta, state_dict=state, optimizer=dict(state={}, param_groups=[])), path)


@pytest.fixture(scope='module')
def reference() -> RefDACS:
    torch.manual_seed(0)
    dacs = RefDACS(**B0, num_classes=len(CLASSES))
    randomise(dacs.model, 1)
    randomise(dacs.ema_model, 2)
    randomise(dacs.imnet_model, 3)
    return dacs.eval()


def build(segmentor_cfg: dict) -> nn.Module:
    return MODELS.build(dict(segmentor_cfg)).eval()


def test_student_and_teacher_give_the_reference_logits(tmp_path, reference):
    path = tmp_path / 'latest.pth'
    daformer_file(path, reference)
    conv, line = load_foreign_checkpoint(path)  # layout 'auto'
    assert conv.layout == 'DAFormer' and '0 missing, 0 unexpected' in line
    assert conv.segmentor['encoder_name'] == 'mit_b0' and conv.segmentor['num_classes'] == 5
    assert conv.meta['CLASSES'] == CLASSES and conv.meta['iter'] == 40000
    assert any(k.startswith('imnet_model.') for k in conv.ignored)
    x = torch.randn(2, 3, 64, 96)
    for state, ref in (
        (conv.state_dict, reference.model),
        (conv.teacher_state_dict, reference.ema_model),
    ):
        net = build(conv.segmentor)
        missing, unexpected = net.load_state_dict(state, strict=True)
        assert not missing and not unexpected
        with torch.no_grad():
            expected, got = ref(x), net(x)
        assert got.shape == expected.shape == (2, 5, 64, 96)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_reference_preprocessing_is_recorded(tmp_path, reference):
    path = tmp_path / 'latest.pth'
    daformer_file(path, reference, with_ema=False, with_imnet=False)
    conv, _ = load_foreign_checkpoint(path, layout='daformer')
    assert conv.teacher_state_dict is None
    pre = conv.data_preprocessor
    assert pre['channel_order'] == 'rgb'
    assert pre['mean'] == pytest.approx([123.675, 116.28, 103.53])
    assert pre['std'] == pytest.approx([58.395, 57.12, 57.375])
    assert pre['size_divisor'] == 1  # the test pipeline has no Pad
    meta = conv.uda_checkpoint(str(path))['meta']['foreign']
    assert meta['segmentor']['arch'] == 'DAFormer' and meta['segmentor']['align_corners'] is False


def test_ddp_prefix_and_plain_encoder_decoder_files_are_read(reference):
    layout = get_layout('daformer')
    ddp = {f'module.model.{k}': v for k, v in reference.model.state_dict().items()}
    # a supervised mmseg run without the UDA wrapper: backbone.* / decode_head.*
    plain = dict(reference.model.state_dict())
    for state in (ddp, plain):
        ckpt = dict(meta={}, state_dict=state)
        assert layout.matches(ckpt)
        student, teacher, _, unmapped = convert_daformer_state(daformer_state(ckpt))
        assert teacher is None and not unmapped
        assert 'net.segmentation_head.conv_seg.weight' in student
        assert 'net.decoder.fuse_layer.aspp_modules.1.depthwise_conv.conv.weight' in student
        assert 'net.encoder.block1.0.attn.sr.weight' in student
    # SegFormer's own head on MiT is not this layout
    segformer = {k: v for k, v in plain.items() if not k.startswith('decode_head.')}
    segformer['decode_head.linear_c4.proj.weight'] = torch.zeros(256, 256)
    assert not layout.matches(dict(state_dict=segformer))


def test_missing_head_weights_are_a_hard_error_naming_the_layout(tmp_path, reference):
    path = tmp_path / 'latest.pth'
    daformer_file(path, reference, with_ema=False, with_imnet=False)
    ckpt = torch.load(path, weights_only=False)
    for k in [k for k in ckpt['state_dict'] if '.fuse_layer.bottleneck.' in k]:
        del ckpt['state_dict'][k]
    torch.save(ckpt, path)
    with pytest.raises(
        ForeignCheckpointError, match=r'DAFormer layout.*\n.*net\.decoder\.fuse_layer\.bottleneck'
    ):
        load_foreign_checkpoint(path)


def test_unknown_student_key_is_reported(tmp_path, reference):
    path = tmp_path / 'latest.pth'
    daformer_file(path, reference, with_ema=False, with_imnet=False)
    ckpt = torch.load(path, weights_only=False)
    ckpt['state_dict']['model.auxiliary_head.conv_seg.weight'] = torch.zeros(5, 8, 1, 1)
    torch.save(ckpt, path)
    with pytest.raises(ForeignCheckpointError, match='model.auxiliary_head.conv_seg.weight'):
        load_foreign_checkpoint(path)


def test_hrda_checkpoint_is_refused_with_the_reason(reference):
    state = {
        f'model.{k.replace("decode_head.", "decode_head.head.")}': v
        for k, v in reference.model.state_dict().items()
    }
    state['model.decode_head.scale_attention.conv_seg.weight'] = torch.zeros(5, 256, 1, 1)
    ckpt = dict(meta={}, state_dict=state)
    layout = get_layout('daformer')
    assert layout.matches(ckpt)
    with pytest.raises(ForeignCheckpointError, match='HRDA'):
        layout.convert(ckpt)


def test_full_size_manifest_mit_b5_daformer_head():
    """The full DAFormer network (MiT-B5 + DAFormer head, 19 classes) on the meta device: every
    key and shape of the reference maps onto uda's network, and nothing is left over."""
    with torch.device('meta'):
        ref = RefEncoderDecoder(**B5, num_classes=19)
    student = {f'model.{k}': v for k, v in ref.state_dict().items()}
    converted, _, _, unmapped = convert_daformer_state(student)
    cfg = daformer_segmentor({k[len('model.') :]: v for k, v in student.items()})
    assert cfg['encoder_name'] == 'mit_b5' and cfg['num_classes'] == 19
    assert 'decoder_embed_dim' not in cfg and 'decoder_channels' not in cfg
    net = MODELS.build(cfg)  # smp's MiT calls .item() while building: CPU, no forward
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert not unmapped
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert len(expected) > 900
