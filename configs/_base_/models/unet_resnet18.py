# U-Net with a ResNet-18 encoder from segmentation-models-pytorch, 19 Cityscapes classes.
# encoder_weights=None: no download at run time; set 'imagenet' when you have network access.
segmentor = dict(
    type='SMPSegmentor',
    arch='Unet',
    encoder_name='resnet18',
    encoder_weights=None,
    num_classes=19,
    decoder_channels=(128, 64, 32, 16, 16),
)
data_preprocessor = dict(
    type='SegDataPreprocessor',
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    size_divisor=32,
    seg_pad_val=255,
)
