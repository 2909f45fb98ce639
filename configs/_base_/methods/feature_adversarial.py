# DANN-style feature alignment as a method: source cross-entropy + the FeatureAdversarial
# term. Its parts are variables, without `model`, so that the configs built on it compose
# them by name: its leaf (configs/feature_adversarial/) and the combined pipelines on top of
# SAC (feature-adversarial_sac.py, full_pipeline.py; two bases may not both define `model`):
#   model = dict(type='Adapter',
#                terms=dict(src=feature_adversarial_source, feat=feature_adversarial))
feature_adversarial_source = dict(type='SourceCE', weight=1.0, branch='source')
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
