# Source-only on CamVid day -> dusk: the ABN setting without target batches (BatchNorm
# statistics from day frames), to show what the BN adaptation of ABN contributes.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvidday2dusk_128x128.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
