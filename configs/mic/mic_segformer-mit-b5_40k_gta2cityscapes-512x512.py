# MIC on DACS on GTA5 -> Cityscapes with SegFormer MiT-B5 (MIC's encoder; lhoyer/MIC
# seg/configs/mic/gtaHR2csHR_mic_hrda.py uses MiT-B5 under HRDA) at DAFormer's settings (AdamW
# 6e-5, head lr x10, no weight decay on norm layers, linear warm-up 1500 iterations then poly
# 1.0, 40k iterations, batch 2, 512x512 crops) plus MIC's masked consistency (64 px blocks,
# ratio 0.7, weight 1). MIC reports 75.9 mIoU with HRDA; uda has no HRDA and uses smp's
# SegFormer head, so this is MIC's single-resolution DAFormer-style variant. From smp's
# ImageNet MiT-B5 (needs network access or a cached file), the data (GTA5_ROOT,
# CITYSCAPES_ROOT) and a GPU:
#   python tools/train.py configs/mic/mic_segformer-mit-b5_40k_gta2cityscapes-512x512.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/segformer_mit-b5.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/dacs_mic.py',  # SourceCE + ClassMix + MaskedConsistency
    '../_base_/schedules/adamw_poly_40k_warmup.py',  # DAFormer's AdamW + warm-up poly, 40k
]
model = dict(
    segmentor=dict(_base_.segmentor, encoder_weights='imagenet'),
    data_preprocessor=_base_.data_preprocessor,
)
# DAFormer's paramwise_cfg, as configs/dacs/dacs_segformer-mit-b5_40k_gta2cityscapes-512x512.py:
# the head at 10x the learning rate, the MiT LayerNorms without weight decay.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'net.segmentation_head': dict(lr_mult=10.0),
            'norm': dict(decay_mult=0.0),
        }
    )
)
