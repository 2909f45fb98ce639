# The mission's combined pipeline (source CE + feature alignment + SAC self-training in one
# two-phase step) on the built-in synthetic shift: the SAC demo as it is (data, network,
# schedule, 200 ABN warm-up iterations, then SAC from the teacher) plus FeatureAdversarial and
# an optimiser for its discriminators.
_base_ = ['../demo/sac_unet-resnet18_400it_synthetic-96x192.py']
# The term of _base_/methods/feature-adversarial_sac.py (that base's `model` would clash with
# the demo's, so it is restated here; tests/engine/test_config.py checks that they agree).
feature_adversarial = dict(
    type='FeatureAdversarial', feature='encoder', in_index=-1, aux_in_index=-2, mode='grl',
    grl_coeff=1.0, weight=1e-3, aux_weight=2e-4, gan_loss='bce',
    discriminator=dict(type='FeatureDiscriminator', channels=(256, 256), kernel_size=1),
    source_branch='source', target_branch='target')
model = dict(terms=[_base_.model.terms[0], feature_adversarial, *_base_.model.terms[1:]])
# Two optimisers (AdapterOptimWrapperConstructor): the demo's for the student, Adam 1e-4 (betas
# 0.9/0.99, as adamw-adam_poly_400it.py) for the discriminators; the demo's poly schedule
# drives both.
optim_wrapper = dict(
    _delete_=True,
    constructor='AdapterOptimWrapperConstructor',
    student=_base_.optim_wrapper,
    discriminators=dict(type='OptimWrapper',
                        optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))))
