# The mission's combined pipeline: source cross-entropy + DANN-style feature alignment + SAC
# self-training, trained in one two-phase step (segmentor, then the feature discriminators;
# needs a schedule with optim_wrapper.discriminators, e.g. sgd-adam_poly_40k_sac.py). The SAC
# terms, teacher and numbers are those of sac.py; FeatureAdversarial has the numbers of
# feature_adversarial.py: encoder stages -1 / -2 through a gradient-reversal layer into
# per-location FeatureDiscriminators (1x1 convs 256-256-1), weights 1e-3 / 2e-4.
_base_ = ['./sac.py']
feature_adversarial = dict(
    type='FeatureAdversarial', feature='encoder', in_index=-1, aux_in_index=-2, mode='grl',
    grl_coeff=1.0, weight=1e-3, aux_weight=2e-4, gan_loss='bce',
    discriminator=dict(type='FeatureDiscriminator', channels=(256, 256), kernel_size=1),
    source_branch='source', target_branch='target')
# SourceCE, FeatureAdversarial, SACSelfTraining, AdaptiveBN (ABN warm-up; runs last).
model = dict(terms=[_base_.model.terms[0], feature_adversarial, *_base_.model.terms[1:]])
