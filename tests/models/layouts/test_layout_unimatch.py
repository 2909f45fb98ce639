"""UniMatch checkpoints load into uda's UniMatchDeepLabV3Plus and give the reference's logits.

The reference network is re-implemented here in plain torch, following
LiheYoung/UniMatch@0324f3d ``model/backbone/resnet.py`` (deep-stem ResNet, torchvision-style
dilation) and ``model/semseg/deeplabv3plus.py`` (ASPP with image pooling, reduce, fuse,
classifier), with their module names, so its ``state_dict`` is the published key-and-shape
manifest. Random weights (BatchNorm statistics included) are saved as ``unimatch.py`` saves them:
``{'model': DDP state dict ('module.*'), 'optimizer', 'epoch', 'previous_best'}``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from uda.models.layouts import ForeignCheckpointError, load_foreign_checkpoint
from uda.models.layouts.base import rename
from uda.models.layouts.unimatch import RULES, unimatch_segmentor
from uda.registry import MODELS

# ---------------------------------------------------------------- reference: backbone


def conv3x3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, bias=False, dilation=dilation)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class RefBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)  # stride on the 3x3 conv
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class RefResNet(nn.Module):
    def __init__(self, layers, replace_stride_with_dilation=(False, False, True)):
        super().__init__()
        self.inplanes = 128
        self.dilation = 1
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, 3, 1, 1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(512, layers[3], 2, replace_stride_with_dilation[2])

    def _make_layer(self, planes, blocks, stride=1, dilate=False):
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * 4, stride), nn.BatchNorm2d(planes * 4)
            )
        layers = [RefBottleneck(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * 4
        for _ in range(1, blocks):
            layers.append(RefBottleneck(self.inplanes, planes, dilation=self.dilation))
        return nn.Sequential(*layers)

    def base_forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


# ---------------------------------------------------------------- reference: DeepLabV3Plus


def ASPPConv(cin, cout, rate):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=rate, dilation=rate, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    )


class RefASPPPooling(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.gap = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    def forward(self, x):
        return F.interpolate(self.gap(x), x.shape[-2:], mode='bilinear', align_corners=True)


class RefASPPModule(nn.Module):
    def __init__(self, cin, rates):
        super().__init__()
        cout = cin // 8
        self.b0 = nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )
        self.b1 = ASPPConv(cin, cout, rates[0])
        self.b2 = ASPPConv(cin, cout, rates[1])
        self.b3 = ASPPConv(cin, cout, rates[2])
        self.b4 = RefASPPPooling(cin, cout)
        self.project = nn.Sequential(
            nn.Conv2d(5 * cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )

    def forward(self, x):
        return self.project(
            torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)
        )


class RefDeepLabV3Plus(nn.Module):
    def __init__(self, layers, nclass, dilations=(6, 12, 18)):
        super().__init__()
        self.backbone = RefResNet(layers)
        low_channels, high_channels = 256, 2048
        self.head = RefASPPModule(high_channels, dilations)
        self.reduce = nn.Sequential(
            nn.Conv2d(low_channels, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(True)
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(high_channels // 8 + 48, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(True),
        )
        self.classifier = nn.Conv2d(256, nclass, 1, bias=True)

    def forward(self, x, need_fp=False):
        h, w = x.shape[-2:]
        feats = self.backbone.base_forward(x)
        c1, c4 = feats[0], feats[-1]
        if need_fp:
            outs = self._decode(
                torch.cat((c1, nn.Dropout2d(0.5)(c1))), torch.cat((c4, nn.Dropout2d(0.5)(c4)))
            )
            outs = F.interpolate(outs, size=(h, w), mode='bilinear', align_corners=True)
            return outs.chunk(2)
        out = self._decode(c1, c4)
        return F.interpolate(out, size=(h, w), mode='bilinear', align_corners=True)

    def _decode(self, c1, c4):
        c4 = self.head(c4)
        c4 = F.interpolate(c4, size=c1.shape[-2:], mode='bilinear', align_corners=True)
        c1 = self.reduce(c1)
        return self.classifier(self.fuse(torch.cat([c1, c4], dim=1)))


# A ResNet with one block per stage except two in layer4 (its second block is dilated), so the
# test is fast but covers the deep stem, every downsample and the dilation rule.
SMALL = (1, 1, 1, 2)
R101 = (3, 4, 23, 3)


def randomise(module: nn.Module, seed: int) -> None:
    """Random values in every weight and BatchNorm statistic (variances positive)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                t.fill_(int(torch.randint(0, 100, (), generator=g)))
            elif name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(('running_mean', 'bias')):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            else:  # keep activations in range through the deep residual stack
                fan_in = max(1, t[0].numel()) if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) / fan_in**0.5)


def unimatch_file(path, net: nn.Module, ddp: bool = True) -> None:
    prefix = 'module.' if ddp else ''
    model = {f'{prefix}{k}': v for k, v in net.state_dict().items()}
    torch.save(
        dict(model=model, optimizer=dict(state={}, param_groups=[]), epoch=79, previous_best=80.9),
        path,
    )


@pytest.fixture(scope='module')
def reference() -> RefDeepLabV3Plus:
    torch.manual_seed(0)
    net = RefDeepLabV3Plus(SMALL, nclass=4)
    randomise(net, 1)
    return net.eval()


def build(cfg: dict) -> nn.Module:
    return MODELS.build(dict(cfg)).eval()


@pytest.mark.parametrize('ddp', [True, False])
def test_logits_equal_the_reference(tmp_path, reference, ddp):
    path = tmp_path / 'best.pth'
    unimatch_file(path, reference, ddp)
    conv, line = load_foreign_checkpoint(path)  # layout 'auto'
    assert conv.layout == 'UniMatch' and '0 missing, 0 unexpected' in line
    assert conv.teacher_state_dict is None
    assert conv.meta == dict(epoch=79, previous_best=80.9)
    pre = conv.data_preprocessor  # ImageNet mean / std of [0, 1] RGB, in 0-255 units
    assert pre['channel_order'] == 'rgb' and pre['size_divisor'] == 1
    assert pre['mean'] == pytest.approx([123.675, 116.28, 103.53])
    assert pre['std'] == pytest.approx([58.395, 57.12, 57.375])
    # blocks per stage SMALL: timm's resnet101s with those layers (same blocks and names)
    assert conv.segmentor['encoder_name'] == 'tu-resnet101s'
    assert conv.segmentor['encoder_kwargs'] == dict(layers=SMALL)
    net = build(conv.segmentor)
    missing, unexpected = net.load_state_dict(conv.state_dict, strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 65, 97)  # any size: UniMatch crops are 801 x 801
    with torch.no_grad():
        expected, got = reference(x), net(x)
    assert got.shape == expected.shape == (2, 4, 65, 97)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_feature_perturbation_drops_what_the_reference_drops(reference):
    """UniMatch's ``need_fp`` output, with the Dropout2d masks of c1 and c4 fixed, equals uda's
    decode of the encoder features with the same channels dropped (the UniMatch term drops the
    features from ``extract_feat`` and calls ``decode``)."""
    state, _ = rename(dict(reference.state_dict()), RULES)
    net = build(unimatch_segmentor(dict(reference.state_dict())))
    net.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        c1, _, _, c4 = reference.backbone.base_forward(x)
        g = torch.Generator().manual_seed(0)
        m1 = (torch.rand(2, c1.shape[1], 1, 1, generator=g) > 0.5).float() * 2
        m4 = (torch.rand(2, c4.shape[1], 1, 1, generator=g) > 0.5).float() * 2
        expected = F.interpolate(
            reference._decode(c1 * m1, c4 * m4), (64, 64), mode='bilinear', align_corners=True
        )
        feats = net.extract_feat(x)
        torch.testing.assert_close(feats[2], c1, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(feats[-1], c4, atol=1e-5, rtol=1e-4)
        # the other stages (stem, layer2, layer3) are not read by the decoder
        dropped = [f * 0 if i in (1, 3, 4) else f for i, f in enumerate(feats)]
        dropped[2], dropped[-1] = feats[2] * m1, feats[-1] * m4
        got = net.decode(dropped, (64, 64))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_missing_weights_are_a_hard_error_naming_the_layout(tmp_path, reference):
    model = {f'module.{k}': v for k, v in reference.state_dict().items() if 'reduce' not in k}
    path = tmp_path / 'best.pth'
    torch.save(dict(model=model, epoch=1), path)
    with pytest.raises(ForeignCheckpointError, match=r'UniMatch layout.*\n.*net\.decoder\.reduce'):
        load_foreign_checkpoint(path)


def test_xception_backbone_is_refused():
    state = {
        'backbone.conv1.weight': torch.zeros(32, 3, 3, 3),
        'classifier.weight': torch.zeros(21, 256, 1, 1),
    }
    with pytest.raises(ForeignCheckpointError, match='Xception'):
        unimatch_segmentor(state)


@pytest.mark.parametrize('nclass', [19, 21])
def test_full_size_manifest_r101(nclass):
    """UniMatch's DeepLabV3Plus on ResNet-101 (Cityscapes 19 / Pascal 21 classes) on the meta
    device: every key and shape maps onto uda's network and nothing is left over."""
    with torch.device('meta'):
        ref = RefDeepLabV3Plus(R101, nclass=nclass)
    state = {k: v for k, v in ref.state_dict().items()}
    cfg = unimatch_segmentor(state)
    assert cfg['encoder_name'] == 'tu-resnet101s' and cfg['num_classes'] == nclass
    converted, unmapped = rename(state, RULES)
    assert not unmapped
    with torch.device('meta'):
        net = MODELS.build(cfg)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert len(expected) > 600
