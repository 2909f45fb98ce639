# SAC on CamVid day -> dusk at the ABN benchmark's budget (UNet-ResNet-18, 128x128 crops,
# 200 iterations): one run, 100 ABN warm-up iterations, then 100 SAC iterations from a teacher
# initialised at iteration 100 (per-step EMA, the run is short), 2 target images x 4 views.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/sac.py',  # SourceCE + SACSelfTraining + teacher hook
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(momentum=0.99, interval=1, start_iter=100),
    labellers=dict(sac=dict(num_images=2)),
    terms=dict(sac=dict(weight=1.0)),
    # From scratch, BN statistics frozen at the ABN values go stale as the weights move; BN
    # keeps tracking target-only statistics throughout (as in the synthetic demo).
    bn_policy='target_only',
)
