# Weak/strong consistency on the built-in synthetic shift: a mean teacher's confident target
# predictions (weak view) train the student on an on-device strong view of the same images.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/fixmatch_uda.py',  # SourceCE + WeakStrongConsistency + teacher
    '../_base_/schedules/adamw_poly_400.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
    # As the demo leaves: BN running statistics follow the target batches only.
    bn_policy='target_only',
)
