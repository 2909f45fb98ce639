"""UniMatch's DeepLab-v3+ (deep-stem ResNet encoder, ASPP with image pooling, two fuse convs).

The equality with the reference network (LiheYoung/UniMatch) on converted checkpoints is tested
in tests/models/layouts/test_layout_unimatch.py.
"""

import os

import torch
from mmengine.config import Config

from tests.conftest import toy_batch
from uda.models.unimatch_deeplabv3plus import UniMatchDeepLabV3Plus
from uda.registry import MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
# timm's resnet101s with one Bottleneck per stage but two in layer4: fast, same names.
SMALL = dict(
    type='SMPSegmentor',
    arch='UniMatchDeepLabV3Plus',
    encoder_name='tu-resnet101s',
    encoder_kwargs=dict(layers=(1, 1, 1, 2)),
    num_classes=19,
    align_corners=True,
)


def test_deep_stem_resnet_at_output_stride_16():
    seg = MODELS.build(dict(SMALL))
    assert isinstance(seg.net, UniMatchDeepLabV3Plus)
    enc = seg.net.encoder.model
    stem = enc.conv1
    assert [tuple(stem[i].weight.shape) for i in (0, 3, 6)] == [
        (64, 3, 3, 3),
        (64, 64, 3, 3),
        (128, 64, 3, 3),
    ]
    assert enc.bn1.num_features == 128 and enc.layer1[0].conv1.in_channels == 128
    assert enc.layer2[0].conv2.stride == (2, 2) and enc.layer2[0].conv1.stride == (1, 1)
    # replace_stride_with_dilation=[False, False, True]: torchvision's rule, first block of
    # layer4 at the previous dilation (1), the next ones at 2, no stride
    assert enc.layer4[0].conv2.dilation == (1, 1) and enc.layer4[0].conv2.stride == (1, 1)
    assert enc.layer4[1].conv2.dilation == (2, 2)
    out = seg(torch.zeros(2, 3, 65, 97), return_features=True)  # any size, as 801 x 801 crops
    assert out['logits'].shape == (2, 19, 65, 97)
    assert out['features'][2].shape[1:] == (256, 17, 25)  # c1, stride 4
    assert out['features'][-1].shape[1:] == (2048, 5, 7)  # c4, stride 16
    assert out['decoder'].shape == (2, 256, 17, 25)
    head = seg.net.decoder.head
    assert [head.b1[0].dilation, head.b2[0].dilation, head.b3[0].dilation] == [
        (6, 6),
        (12, 12),
        (18, 18),
    ]
    assert head.project[0].in_channels == 5 * 256  # with the image-pooling branch
    assert [m.in_channels for m in seg.net.decoder.fuse if isinstance(m, torch.nn.Conv2d)] == [
        304,
        256,
    ]


def test_unimatch_term_trains_it_with_feature_perturbation():
    """The UniMatch term (configs/_base_/methods/unimatch.py) drops encoder features of the weak
    view and decodes them again: with this network the FP loss reaches encoder and head, as
    UniMatch's ``loss_u_fp`` does (its c1 / c4 come from the forward with gradient)."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'methods', 'unimatch.py'))
    model_cfg = cfg.model.to_dict()
    model_cfg['terms']['unl'].update(strong_weights=())  # FP only
    model_cfg['terms']['sup']['weight'] = 0.0
    model_cfg['labellers']['weak']['threshold'] = 0.0  # Cityscapes: every pixel is a target
    model_cfg.update(
        segmentor=dict(SMALL),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
    )
    model = MODELS.build(model_cfg)
    model.train()
    branches = ('labeled', 'unlabeled', 'unlabeled_mix')
    data = model.data_preprocessor(toy_batch(branches, labelled=('labeled',)), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    fp = losses['unl.loss_fp']  # the term's name in the unimatch base
    assert torch.isfinite(fp) and fp.requires_grad
    fp.backward()
    net = model.student.net
    assert net.encoder.model.conv1[0].weight.grad.abs().sum() > 0  # the deep stem
    assert net.decoder.reduce[0].weight.grad.abs().sum() > 0
    assert net.segmentation_head.classifier.weight.grad.abs().sum() > 0
