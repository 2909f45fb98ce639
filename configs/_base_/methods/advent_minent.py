# ADVENT's AdvEnt+MinEnt (arXiv:1811.12833; 45.5 mIoU GTA5->Cityscapes as an ensemble in the
# paper): the terms of advent.py plus minent.py's MinEnt, with their reference weights.
_base_ = ['./advent.py']
model = dict(terms=dict(minent=dict(type='MinEnt', weight=1e-3, aux_weight=2e-4, branch='target')))
