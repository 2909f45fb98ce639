# DeepLab-v2 (ASPP 6/12/18/24, summed) on an smp ResNet-101 at output stride 8, 19 classes:
# the network of the adaptation literature (AdaptSegNet, ADVENT, SAC). encoder_weights=None:
# SAC warm-starts from an ABN checkpoint (`load_from`); set 'imagenet' to train ABN from
# ImageNet with network access.
segmentor = dict(
    type='SMPSegmentor', arch='DeepLabV2', encoder_name='resnet101', encoder_weights=None,
    num_classes=19)
data_preprocessor = dict(
    type='SegDataPreprocessor', mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
    size_divisor=8, seg_pad_val=255)
