# DANN-style feature alignment (gradient reversal on encoder stages -1 and -2) on the built-in
# synthetic shift.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/feature_adversarial.py',  # FeatureAdversarial (GRL), its source CE
    '../_base_/schedules/adamw-adam_poly_400.py',  # student AdamW + discriminator Adam
]
model = dict(
    type='Adapter',
    terms=dict(src=_base_.feature_adversarial_source, feat=_base_.feature_adversarial),
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    # Adaptive BN: target-only BN statistics; without them these runs collapse.
    bn_policy='target_only',
)
