# ADVENT's MinEnt (arXiv:1811.12833): minimise the mean normalised pixel entropy of target
# predictions; weights 1e-3 (main) / 2e-4 (aux head), source CE 1.0 / aux 0.1. No
# discriminator: a single-optimiser schedule works.
model = dict(
    type='Adapter',
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, aux_weight=0.1, branch='source'),
        minent=dict(type='MinEnt', weight=1e-3, aux_weight=2e-4, branch='target'),
    ),
)
