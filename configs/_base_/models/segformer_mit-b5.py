# SegFormer (Xie et al., NeurIPS 2021, arXiv:2105.15203): the Mix Transformer MiT-B5 encoder
# (the encoder of DAFormer, lhoyer/DAFormer configs/_base_/models/daformer_sepaspp_mitb5.py)
# with smp's all-MLP SegFormer head (256 channels, stride-4 logits upsampled x4), 19 classes.
# DAFormer's own head (context-aware ASPP fusion of the four stages) is not in smp, so this is
# not DAFormer's network, only its encoder.
# Initial weights: SegFormer's ImageNet-1K MiT-B5, `pretrained/mit_b5.pth` of DAFormer and MIC
# (lhoyer/DAFormer README.md and tools/download_checkpoints.sh `gdown --id
# 1d7I50jVjtCddnhpf-lqj8-f13UyCzoW1  # MiT-B5 weights`; lhoyer/MIC
# seg/tools/download_checkpoints.sh).
# Google Drive / OneDrive only (no direct URL, no checksum published): put it in $UDA_WEIGHTS.
# Without it, smp's copy of the ImageNet MiT-B5 (smp-hub/mit_b5.imagenet at smp 0.6's pinned
# revision) is taken from the Hugging Face cache or hub (uda/models/weights.py; docs/weights.md).
init_mit_b5 = dict(
    file='mit_b5.pth',
    manual='Google Drive: gdown --id 1d7I50jVjtCddnhpf-lqj8-f13UyCzoW1 (lhoyer/DAFormer '
    'tools/download_checkpoints.sh; the SegFormer MiT weights folder of NVlabs/SegFormer)',
    layout='torchvision',
    hf=dict(
        repo_id='smp-hub/mit_b5.imagenet',
        filename='model.safetensors',
        revision='ced04d96c586b6297fd59a7a1e244fc78fdb6531',
    ),
)
segmentor = dict(
    type='SMPSegmentor',
    arch='Segformer',
    encoder_name='mit_b5',
    encoder_weights=None,
    encoder_checkpoint=init_mit_b5,
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
