# The FeatureAdversarial term alone, as a variable and without `model`, so that configs which
# already inherit another method's `model` (the combined pipeline on top of SAC) can add it by
# name (model=dict(terms=dict(feat=feature_adversarial))): two bases may not both define
# `model`.
# DANN-style feature alignment (Ganin & Lempitsky, arXiv:1409.7495): the deepest encoder stage
# (and the penultimate one, aux level) feed per-location FeatureDiscriminators (1x1 convs
# 256-256-1, LeakyReLU 0.2) through a gradient-reversal layer (mode='grl'; mode='gan' is the
# two-step GAN update instead). Weights 1e-3 / 2e-4 as the other adversarial terms. Needs a
# schedule with optim_wrapper.discriminators.
feature_adversarial = dict(
    type='FeatureAdversarial',
    feature='encoder',
    in_index=-1,
    aux_in_index=-2,
    mode='grl',
    grl_coeff=1.0,
    weight=1e-3,
    aux_weight=2e-4,
    gan_loss='bce',
    discriminator=dict(type='FeatureDiscriminator', channels=(256, 256), kernel_size=1),
    source_branch='source',
    target_branch='target',
)
