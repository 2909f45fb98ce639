# MIC on DACS on GTA5 -> Cityscapes with a DINOv2 ViT-S/14 encoder and smp's DPT decoder: the
# vision-foundation-model line of UDA (Englert et al., "Exploring the Benefits of Vision
# Foundation Models for Unsupervised Domain Adaptation", CVPR-W 2024, MIC with DINOv2
# encoders). Starts from the official DINOv2 ViT-S/14 file (init_dinov2_vits14 of the model base;
# docs/weights.md). Method and schedule as the MiT-B5 MIC leaf (DAFormer's AdamW 6e-5, head
# x10, warm-up + poly, 40k iterations, batch 2, 512x512). Differences to that line: smp's DPT
# decoder, and patch 16 (timm resamples the 14x14 patch embedding; smp's DPT needs a
# power-of-two patch). ViT-B/14: encoder_name='tu-vit_base_patch14_dinov2',
# encoder_checkpoint=init_dinov2_vitb14 and decoder_intermediate_channels=(96, 192, 384, 768).
#   python tools/train.py configs/mic/mic_dpt-vit-small-dinov2_40k_gta2cityscapes-512x512.py
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/dpt_vit-small-p16.py',  # segmentor + data_preprocessor + DINOv2 inits
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/dacs_mic.py',  # SourceCE + ClassMix + MaskedConsistency
    '../_base_/schedules/adamw_poly_40k_warmup.py',  # DAFormer's AdamW + warm-up poly, 40k
]
model = dict(
    segmentor=dict(
        _base_.segmentor,
        encoder_name='tu-vit_small_patch14_dinov2',
        encoder_kwargs=dict(patch_size=16, img_size=512),
        encoder_checkpoint=_base_.init_dinov2_vits14,
    ),
    data_preprocessor=_base_.data_preprocessor,
)
# The DPT decoder and its segmentation head at 10x the learning rate (the schedule's head key
# is 'net.decoder'; smp's DPT keeps the last convolutions in 'net.segmentation_head').
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'net.segmentation_head': dict(lr_mult=10.0)}))
