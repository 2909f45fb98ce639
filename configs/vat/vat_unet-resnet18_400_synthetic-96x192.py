# Virtual adversarial training on the target branch of the built-in synthetic shift.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/vat.py',  # SourceCE + VirtualAdversarial
    '../_base_/schedules/adamw_poly_400.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
    # As the demo leaves: BN running statistics follow the target batches only (the
    # perturbed VAT forwards never update them).
    bn_policy='target_only',
)
