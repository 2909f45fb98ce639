# The combined pipeline: source cross-entropy + DANN-style feature alignment + SAC
# self-training, trained in one two-phase step (student, then the feature discriminators;
# needs a schedule with optim_wrapper.discriminators, e.g. sgd-adam_poly_40k_sac.py). The SAC
# term, labeller, teacher and numbers are those of sac.py; FeatureAdversarial is that of
# feature_adversarial.py: encoder stages -1 / -2 through a gradient-reversal layer into
# per-location FeatureDiscriminators (1x1 convs 256-256-1), weights 1e-3 / 2e-4.
_base_ = ['./sac.py', './feature_adversarial.py']
model = dict(terms=dict(feat=_base_.feature_adversarial))
