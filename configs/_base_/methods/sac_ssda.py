# SAC with a few labelled target images (semi-supervised domain adaptation): every number of
# SAC (sac.py) plus cross-entropy on the labelled target branch at the source term's weight, the
# "S+T" supervision of the SSDA literature added to the adaptation method.
_base_ = ['./sac.py']
model = dict(terms=dict(tgt=dict(type='SourceCE', weight=1.0, branch='target_labeled')))
