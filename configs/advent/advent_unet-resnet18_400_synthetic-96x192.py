# ADVENT's AdvEnt (entropy-map adversarial alignment) on the built-in synthetic shift, at the
# demo budget.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/advent.py',  # SourceCE + EntropyAdversarial
    '../_base_/schedules/adamw-adam_poly_400.py',  # student AdamW + discriminator Adam
]
# Multi-level: the auxiliary head on the penultimate encoder stage (stride 16, 256 channels).
model = dict(
    segmentor=dict(_base_.segmentor, aux_head=dict(in_index=-2, channels=64)),
    data_preprocessor=_base_.data_preprocessor,
    # Adaptive BN: target-only BN statistics; without them these runs collapse.
    bn_policy='target_only',
)
