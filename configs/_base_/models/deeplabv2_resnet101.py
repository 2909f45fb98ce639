# DeepLab-v2 (ASPP 6/12/18/24, summed) on an smp ResNet-101 at output stride 8, 19 classes:
# the network of the adaptation literature (AdaptSegNet, ADVENT, SAC). encoder_weights=None:
# SAC warm-starts from an ABN checkpoint (`load_from`); set 'imagenet' to train ABN from
# ImageNet with network access.
# align_corners=True: the reference code upsamples the stride-8 logits with
# `nn.Upsample(..., mode='bilinear', align_corners=True)` (valeoai/ADVENT
# advent/domain_adaptation/train_UDA.py and eval_UDA.py; visinf/da-sac models/deeplabv2.py
# `F.interpolate(..., align_corners=True)`), so its checkpoints evaluate as their authors' code.
# Multi-level leaves add ADVENT's auxiliary classifier, an ASPP on layer3 (stage -2):
# aux_head=dict(type='aspp', in_index=-2) (valeoai/ADVENT advent/model/deeplabv2.py `layer5`).
segmentor = dict(
    type='SMPSegmentor',
    arch='DeepLabV2',
    encoder_name='resnet101',
    encoder_weights=None,
    num_classes=19,
    align_corners=True,
)
data_preprocessor = dict(
    type='SegDataPreprocessor',
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    size_divisor=8,
    seg_pad_val=255,
)
