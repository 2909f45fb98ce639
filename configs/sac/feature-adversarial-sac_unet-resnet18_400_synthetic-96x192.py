# The combined pipeline (source CE + feature alignment + SAC self-training in one
# two-phase step) on the built-in synthetic shift: the SAC demo as it is (data, network,
# schedule, 200 ABN warm-up iterations, then SAC from the teacher) plus FeatureAdversarial and
# an optimiser for its discriminators.
_base_ = [
    '../demo/sac_unet-resnet18_400_synthetic-96x192.py',  # the SAC demo, as it is
    '../_base_/methods/feature_adversarial.py',  # the FeatureAdversarial term (a variable)
]
# The demo's terms (src, sac) plus FeatureAdversarial, merged by name.
model = dict(terms=dict(feat=_base_.feature_adversarial))
# Two optimisers (AdapterOptimWrapperConstructor): the demo's for the student, Adam 1e-4 (betas
# 0.9/0.99, as adamw-adam_poly_400.py) for the discriminators; the demo's poly schedule
# drives both.
optim_wrapper = dict(
    _delete_=True,
    constructor='AdapterOptimWrapperConstructor',
    student=_base_.optim_wrapper,
    discriminators=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
    ),
)
