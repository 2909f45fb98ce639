# DeepLab-v2 (ASPP 6/12/18/24, summed) on an smp ResNet-101 at output stride 8, 19 classes:
# the network of the adaptation literature (AdaptSegNet, ADVENT, SAC).
# Initial weights (encoder_checkpoint; uda/models/weights.py finds the file: the path,
# $UDA_WEIGHTS, the torch hub / Hugging Face caches, then the URL with its checksum; offline and
# missing it stops with one error line; docs/weights.md). Each paper's own init, by name:
# - torchvision's ImageNet ResNet-101, da-sac's INIT_MODEL (visinf/da-sac
#   configs/deeplabv2_resnet101_train.yaml, README.md:69); SHA-256 prefix 5d3b4d8f in the name.
init_torchvision = dict(
    file='resnet101-5d3b4d8f.pth',
    url='https://download.pytorch.org/models/resnet101-5d3b4d8f.pth',
    layout='torchvision',
)
# - ADVENT's ImageNet Caffe DeepLab init (valeoai/ADVENT README.md -> release v0.1; read by
#   advent/scripts/train.py dropping key part 0 and layer5); no checksum published.
init_advent = dict(
    file='DeepLab_resnet_pretrained_imagenet.pth',
    url='https://github.com/valeoai/ADVENT/releases/download/v0.1/'
    'DeepLab_resnet_pretrained_imagenet.pth',
    layout='deeplab_caffe',
)
# - AdaptSegNet's ImageNet+COCO Caffe DeepLab init (wasidennis/AdaptSegNet
#   train_gta2cityscapes_multi.py RESTORE_FROM; keys `Scale.*`, layer5 skipped); the name's
#   f81d91e8 is checked as a SHA-256 prefix (torch.hub's convention).
init_adaptsegnet = dict(
    file='DeepLab_resnet_pretrained_init-f81d91e8.pth',
    url='http://vllab.ucmerced.edu/ytsai/CVPR18/DeepLab_resnet_pretrained_init-f81d91e8.pth',
    layout='deeplab_caffe',
)
# - DACS's COCO DeepLab init (vikolss/DACS configs/configUDA.json "pretrained": "coco" ->
#   trainUDA.py restore_from; copied where names and shapes match, so layer5 is skipped).
init_dacs = dict(
    file='resnet101COCO-41f33a49.pth',
    url='http://vllab1.ucmerced.edu/~whung/adv-semi-seg/resnet101COCO-41f33a49.pth',
    layout='deeplab_caffe',
)
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
    encoder_checkpoint=init_torchvision,  # the leaves of ADVENT, AdaptSegNet, DACS swap it
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
