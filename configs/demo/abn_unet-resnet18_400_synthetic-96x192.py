# The README's main job: ABN on the built-in synthetic shift, minutes on a 2-core CPU.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/abn.py',  # SourceCE + target-only BN statistics
    '../_base_/schedules/adamw_poly_400.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
)
