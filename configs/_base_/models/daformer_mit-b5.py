# DAFormer's network (Hoyer et al., CVPR 2022, arXiv:2111.14887): the Mix Transformer MiT-B5
# encoder and DAFormer's context-aware fusion head, as lhoyer/DAFormer
# configs/_base_/models/daformer_sepaspp_mitb5.py (on daformer_conv1_mitb5.py): each stage
# embedded to 256 channels by a linear layer, resized to stride 4 (bilinear, align_corners
# False), fused by a depthwise-separable ASPP (dilations 1, 6, 12, 18, BN + ReLU, no image
# pooling) and a 3x3 bottleneck to 256 channels, dropout 0.1, 1x1 classifier, 19 classes
# (uda/models/daformer.py). A DAFormer / MIC latest.pth converts onto it
# (tools/convert_checkpoint.py --layout daformer; docs/networks.md).
# The init file (init_mit_b5: SegFormer's ImageNet MiT-B5, DAFormer's pretrained/mit_b5.pth) and
# the input normalisation (RGB 0-255, mean 123.675/116.28/103.53, std 58.395/57.12/57.375) are
# the SegFormer base's.
_base_ = ['./segformer_mit-b5.py']  # init_mit_b5 + data_preprocessor
segmentor = dict(
    _delete_=True,
    type='SMPSegmentor',
    arch='DAFormer',
    encoder_name='mit_b5',
    encoder_weights=None,
    encoder_checkpoint=_base_.init_mit_b5,
    num_classes=19,
    decoder_embed_dim=256,  # decoder_params.embed_dims
    decoder_channels=256,  # channels
    decoder_dilations=(1, 6, 12, 18),  # fusion_cfg.dilations (sep=True, pool=False)
    decoder_dropout=0.1,  # dropout_ratio
    align_corners=False,  # DAFormerHead asserts it
)
