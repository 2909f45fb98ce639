# Supervised-only baseline of semi-supervised training: cross-entropy on the labelled branch;
# the unlabelled branches are drawn (same data pipeline, same budget) but never used.
# LiheYoung/UniMatch supervised.py (criterion CE; OHEM on Cityscapes: SourceCE ohem_thresh, set by
# the Cityscapes leaves).
model = dict(
    type='Adapter',
    terms=dict(sup=dict(type='SourceCE', weight=1.0, branch='labeled')),
)
