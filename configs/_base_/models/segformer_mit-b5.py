# SegFormer (Xie et al., NeurIPS 2021, arXiv:2105.15203): the Mix Transformer MiT-B5 encoder
# (the encoder of DAFormer, lhoyer/DAFormer configs/_base_/models/daformer_sepaspp_mitb5.py)
# with smp's all-MLP SegFormer head (256 channels, stride-4 logits upsampled x4), 19 classes.
# DAFormer's own head (context-aware ASPP fusion of the four stages) is not in smp, so this is
# not DAFormer's network, only its encoder. encoder_weights=None: no download at run
# time; the GTA leaves set 'imagenet' (smp-hub/mit_b5.imagenet, as DAFormer's ImageNet MiT-B5).
segmentor = dict(
    type='SMPSegmentor',
    arch='Segformer',
    encoder_name='mit_b5',
    encoder_weights=None,
    num_classes=19,
    decoder_segmentation_channels=256,
)
data_preprocessor = dict(
    type='SegDataPreprocessor',
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    size_divisor=32,
    seg_pad_val=255,
)
