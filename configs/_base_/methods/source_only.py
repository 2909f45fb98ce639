# Source-only: cross-entropy on the labelled source branch, nothing on the target.
model = dict(type='Adapter', terms=dict(src=dict(type='SourceCE', weight=1.0, branch='source')))
