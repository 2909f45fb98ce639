# Source-only on the built-in shift: no target data at all (BN statistics from source).
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/synthetic_shift.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_400.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
)
