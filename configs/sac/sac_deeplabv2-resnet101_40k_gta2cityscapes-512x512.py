# SAC on GTA5 -> Cityscapes with DeepLab-v2 ResNet-101 at the reference settings (reported:
# 53.8 mIoU on Cityscapes val; ABN 40.8). Warm start from an ABN checkpoint, as the reference:
#   python tools/train.py configs/sac/sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py \
#       --cfg-options load_from=work_dirs/abn_deeplabv2-r101/iter_N.pth
# Optional importance sampling of target images (tools/compute_is_weights.py writes the file):
#   --cfg-options train_dataloader.sampler.type=ImportanceSampler \
#       train_dataloader.sampler.weights_file=work_dirs/is_weights.json
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/sac.py',  # SourceCE + SACSelfTraining (weight 5)
    '../_base_/schedules/sgd_poly_40k_sac.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    # Reference batches: 2 target images x 4 views beside the source batch.
    labellers=dict(sac=dict(num_images=2)),
)
