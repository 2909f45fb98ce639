# ABN baseline: source cross-entropy, and BatchNorm running statistics that follow the target
# only (the baseline SAC reports): source forwards normalise with batch statistics without
# updating the running ones; a no-grad train-mode forward of each target batch updates them.
model = dict(
    type='Adapter',
    terms=dict(src=dict(type='SourceCE', weight=1.0, branch='source')),
    bn_policy=[dict(mode='target_only', branch='target')],
)
