# ABN baseline on GTA5 -> Cityscapes with DeepLab-v2 ResNet-101: the starting point of SAC
# (visinf/da-sac trains it with `launch/train.sh gta resnet101 base`; reported 40.8 mIoU on
# Cityscapes val, README "Training the baseline"). Its last checkpoint warm-starts SAC:
#   python tools/train.py configs/abn/abn_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py
#   python tools/train.py configs/sac/sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py \
#       --cfg-options \
#       load_from=work_dirs/abn_deeplabv2-resnet101_40k_gta2cityscapes-512x512/iter_40000.pth
# (docs/converting_checkpoints.md; the initial weights come from the model base, docs/weights.md).
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/abn.py',  # SourceCE, BN statistics from the target
    '../_base_/schedules/sgd_poly_40k_sac.py',  # the SAC reference optimiser, 40k
]
model = dict(segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor)
