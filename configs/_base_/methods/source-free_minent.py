# Source-free MinEnt (ADVENT's entropy term, arXiv:1811.12833, alone): minimise the mean
# normalised pixel entropy of the student's target predictions, from a trained source
# checkpoint (`load_from`), on unlabelled target images only (no source branch, no source data).
model = dict(
    type='Adapter',
    terms=dict(
        # Weight 1 (ADVENT's 1e-3 balances it against the source cross-entropy, absent here);
        # the auxiliary head is not used.
        minent=dict(type='MinEnt', weight=1.0, aux_weight=0.0, branch='target'),
    ),
    bn_policy='train',  # only target batches: BatchNorm follows the target statistics
)
