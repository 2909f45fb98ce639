# DeepLab-v3+ on an smp ResNet-101 at output stride 16 with ASPP rates 6/12/18, 256 channels,
# plain (not separable) ASPP convolutions and no ASPP dropout: the network of UniMatch
# (LiheYoung/UniMatch model/semseg/deeplabv3plus.py; configs/*.yaml replace_stride_with_dilation
# [False, False, True], dilations [6, 12, 18]). align_corners=True as its upsampling.
# Differences: smp's decoder fuses the low-level (stride 4) and ASPP features with one 3x3
# convolution block where UniMatch has two; UniMatch starts from ImageNet weights: set
# encoder_weights='imagenet' with network access (None here: nothing is downloaded at run time;
# the SSL-pretrained encoder of the pretraining issue is the other starting point).
segmentor = dict(
    type='SMPSegmentor',
    arch='DeepLabV3Plus',
    encoder_name='resnet101',
    encoder_weights=None,
    num_classes=19,
    encoder_output_stride=16,
    decoder_channels=256,
    decoder_atrous_rates=(6, 12, 18),
    decoder_aspp_separable=False,
    decoder_aspp_dropout=0.0,
    align_corners=True,
)
data_preprocessor = dict(
    type='SegDataPreprocessor',
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    size_divisor=16,
    seg_pad_val=255,
)
