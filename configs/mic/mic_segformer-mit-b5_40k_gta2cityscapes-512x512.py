# MIC on DACS on GTA5 -> Cityscapes with DAFormer's network, MiT-B5 + DAFormer head (MIC's
# encoder and head; lhoyer/MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py runs them under HRDA):
# the MiT-B5 DACS leaf (DAFormer's settings: AdamW 6e-5, head lr x10, warm-up + poly, 40k
# iterations, batch 2, 512x512) plus MIC's masked consistency (64 px blocks, ratio 0.7, weight
# 1) on the same teacher pseudo-labels, as dacs_mic.py. MIC reports 75.9 mIoU with HRDA; uda has
# no HRDA (docs/networks.md), so this is MIC's single-resolution DAFormer variant. Starts from
# MIC's ImageNet MiT-B5 (mit_b5.pth, docs/weights.md); needs the data (GTA5_ROOT,
# CITYSCAPES_ROOT) and a GPU:
#   python tools/train.py configs/mic/mic_segformer-mit-b5_40k_gta2cityscapes-512x512.py
_base_ = [
    '../dacs/dacs_segformer-mit-b5_40k_gta2cityscapes-512x512.py',  # everything but MIC
    '../_base_/methods/mic.py',  # variable masked_consistency
]
model = dict(terms=dict(mic=_base_.masked_consistency))
