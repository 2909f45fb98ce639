# SAC on SYNTHIA -> Cityscapes with DeepLab-v2 ResNet-101 at the reference settings (reported:
# 52.6 mIoU over 16 classes). Warm start from an ABN checkpoint:
#   python tools/train.py configs/sac/sac_deeplabv2-resnet101_40k_synthia2cityscapes-512x512.py \
#       --cfg-options load_from=work_dirs/abn_deeplabv2-r101_synthia/iter_N.pth
# Needs the data (SYNTHIA_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthia2cityscapes_512x512.py',  # SYNTHIA source, Cityscapes target
    '../_base_/methods/sac.py',  # SourceCE + SACSelfTraining (weight 5)
    '../_base_/schedules/sgd_poly_40k_sac.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    # Reference batches: 2 target images x 4 views beside the source batch.
    labellers=dict(sac=dict(num_images=2)),
)
