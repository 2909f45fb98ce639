# SAC + image-level target labels on CamVid day -> dusk: the SAC leaf
# (sac_unet-resnet18_200_camvidday2dusk-128x128.py) plus the target CAM term from the start
# and SAC's pseudo-labels filtered by the image labels of the dusk frames.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvidday2dusk_weak_target_128x128.py',
    '../_base_/methods/sac_cam.py',
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(momentum=0.99, interval=1, start_iter=100),
    labellers=dict(sac=dict(num_images=2)),
    terms=dict(sac=dict(weight=1.0)),
    bn_policy='target_only',
)
