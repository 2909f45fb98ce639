# ABN baseline: source cross-entropy + target batches through the student in train mode
# without gradient, so BatchNorm statistics follow the target (the baseline SAC reports).
model = dict(
    type='Adapter',
    terms=[dict(type='SourceCE', weight=1.0, branch='source'),
           dict(type='AdaptiveBN', branch='target', target_only_stats=True)])
