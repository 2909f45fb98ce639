# Weak/strong consistency on CamVid day -> dusk at the ABN benchmark's budget (UNet-ResNet-18,
# 128x128 crops, 200 iterations), as the SAC CamVid leaf: 100 ABN warm-up iterations, then the
# mean teacher's confident weak-view predictions train the student on strong views.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/fixmatch_uda.py',  # SourceCE + WeakStrongConsistency + teacher
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(start_iter=100),  # ramped EMA from iteration 100
    bn_policy='target_only',  # as the ABN and SAC CamVid leaves
)
