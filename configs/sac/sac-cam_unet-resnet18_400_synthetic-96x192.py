# SAC + image-level target labels on the built-in synthetic shift: the SAC demo
# (configs/demo/sac_unet-resnet18_400_synthetic-96x192.py) plus the target CAM term from
# the start and SAC's pseudo-labels filtered by the image labels.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/synthetic_shift_weak_target.py',  # target img_labels from masks
    '../_base_/methods/sac_cam.py',  # SourceCE + SAC (filtered labels) + target CAM
    '../_base_/schedules/adamw_poly_400.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(momentum=0.99, interval=1, start_iter=200),  # as the SAC demo
    labellers=dict(sac=dict(num_images=2)),
    terms=dict(sac=dict(weight=1.0)),
    bn_policy='target_only',  # as the SAC demo (from scratch)
)
