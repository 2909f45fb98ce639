# Source-free minent on CamVid day -> dusk: adapt the day-trained model with unlabelled dusk
# frames only (no day data is read). Train the source model first:
#   python tools/train.py \
#       configs/source-only/source-only_unet-resnet18_200_camvidday2dusk-128x128.py
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvid-dusk_target-only_128x128.py',  # dusk branch only
    '../_base_/methods/source-free_minent.py',
    '../_base_/schedules/adamw_poly_200_source-free.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
# The trained source model (tools/train.py's default work dir of the source-only leaf).
load_from = 'work_dirs/source-only_unet-resnet18_200_camvidday2dusk-128x128/iter_200.pth'
