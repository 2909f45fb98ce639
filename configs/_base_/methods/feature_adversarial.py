# DANN-style feature alignment as a method: source cross-entropy + the FeatureAdversarial term
# of feature_adversarial_term.py (its numbers are stated there once).
_base_ = ['./feature_adversarial_term.py']
model = dict(
    type='Adapter',
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, branch='source'), feat=_base_.feature_adversarial
    ),
)
