# UniMatch's network (Yang et al., CVPR 2023, arXiv:2208.09910): DeepLab-v3+ on its deep-stem
# ResNet-101 (LiheYoung/UniMatch model/backbone/resnet.py, model/semseg/deeplabv3plus.py;
# uda/models/unimatch_deeplabv3plus.py). The encoder is timm's resnet101s (3x3 64-64-128 stem,
# stride on the 3x3 conv) at output stride 16 (configs/*.yaml replace_stride_with_dilation
# [False, False, True]); the head: ASPP 2048 -> 256 with rates 6/12/18 and image pooling, the
# stride-4 features reduced to 48 channels, two 3x3 fuse convolutions (304 -> 256 -> 256) and a
# 1x1 classifier; every resize bilinear with align_corners=True. A UniMatch best.pth converts
# onto it (tools/convert_checkpoint.py --layout unimatch; docs/networks.md).
# The init file (init_unimatch: UniMatch's pretrained/resnet101.pth) and the normalisation
# (ImageNet mean / std of [0, 1] RGB, here in 0-255 units) are the DeepLab-v3+ base's. No
# padding to a multiple of 16: UniMatch's 801 / 321 crops go in as they are.
_base_ = ['./deeplabv3plus_resnet101.py']  # init_unimatch + data_preprocessor
segmentor = dict(
    _delete_=True,
    type='SMPSegmentor',
    arch='UniMatchDeepLabV3Plus',
    encoder_name='tu-resnet101s',
    encoder_weights=None,
    encoder_checkpoint=_base_.init_unimatch,
    num_classes=19,
    encoder_output_stride=16,
    decoder_atrous_rates=(6, 12, 18),  # dilations
    decoder_channels=256,
    align_corners=True,
)
data_preprocessor = dict(size_divisor=1)
