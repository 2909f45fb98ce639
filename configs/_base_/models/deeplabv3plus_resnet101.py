# DeepLab-v3+ on a deep-stem ResNet-101 at output stride 16 with ASPP rates 6/12/18, 256 channels,
# plain (not separable) ASPP convolutions and no ASPP dropout: the network of UniMatch
# (LiheYoung/UniMatch model/semseg/deeplabv3plus.py; configs/*.yaml replace_stride_with_dilation
# [False, False, True], dilations [6, 12, 18]). align_corners=True as its upsampling.
# Differences: smp's decoder fuses the low-level (stride 4) and ASPP features with one 3x3
# convolution block where UniMatch has two.
# The encoder is timm's `resnet101s`: UniMatch's ResNet-101 (model/backbone/resnet.py: a
# 3x3 64-64-128 stem `conv1.0/.1/.3/.4/.6` + `bn1`, 128 channels into layer1, stride on the 3x3
# conv, conv+BN downsample) has exactly its parameter names and shapes (all 636 compared), so
# UniMatch's ImageNet init loads into it: `pretrained/resnet101.pth` (README.md "Pretrained
# Backbone", Google Drive id 1Rx0legsMolCWENpfvE2jUScT3ogalMO8; no direct URL, no checksum
# published; put it in $UDA_WEIGHTS; uda/models/weights.py, docs/weights.md).
init_unimatch = dict(
    file='resnet101.pth',
    manual='Google Drive: https://drive.google.com/file/d/1Rx0legsMolCWENpfvE2jUScT3ogalMO8 '
    '(LiheYoung/UniMatch README.md, Pretrained Backbone)',
    layout='torchvision',
)
segmentor = dict(
    type='SMPSegmentor',
    arch='DeepLabV3Plus',
    encoder_name='tu-resnet101s',
    encoder_weights=None,
    encoder_checkpoint=init_unimatch,
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
