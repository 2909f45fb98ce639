# Fully supervised CamVid (no shift): pixel labels of all 367 train frames, tested on the 233
# test frames, at the budget of the weak-only CAM run
# (configs/cam/cam_unet-resnet18_200_camvid-128x128.py) that it is compared with.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvid_128x128.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
