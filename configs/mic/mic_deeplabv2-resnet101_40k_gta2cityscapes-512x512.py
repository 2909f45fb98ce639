# MIC on DACS on GTA5 -> Cityscapes with DeepLab-v2 ResNet-101 at DAFormer's settings
# (AdamW 6e-5, head lr x10, linear warm-up 1500 iterations then poly 1.0, 40k iterations,
# batch 2, 512x512 crops) plus MIC's masked consistency (64 px blocks, ratio 0.7, weight 1).
# MIC reports 75.9 mIoU with HRDA + MiT-B5 (lhoyer/MIC README); uda has no HRDA, so this is
# the single-resolution DACS host.
#   python tools/train.py configs/mic/mic_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py
# From torchvision's ImageNet ResNet-101 (init_torchvision of the model base; MIC's DeepLab-v2
# runs start from mmcv's deep-stem resnet101_v1c, which this torchvision-style ResNet cannot
# take; docs/weights.md). Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/dacs_mic.py',  # SourceCE + ClassMix + MaskedConsistency
    '../_base_/schedules/adamw_poly_40k_warmup.py',  # DAFormer's AdamW + warm-up poly, 40k
]
model = dict(
    segmentor=_base_.segmentor,  # init_torchvision
    data_preprocessor=_base_.data_preprocessor,
)
