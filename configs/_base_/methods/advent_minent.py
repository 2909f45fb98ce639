# ADVENT's AdvEnt+MinEnt (arXiv:1811.12833; 45.5 mIoU GTA5->Cityscapes as an ensemble in the
# paper): both terms of advent.py and minent.py with their reference weights.
model = dict(
    type='Adapter',
    terms=[dict(type='SourceCE', weight=1.0, aux_weight=0.1, branch='source'),
           dict(type='EntropyAdversarial', weight=1e-3, aux_weight=2e-4, gan_loss='bce',
                discriminator=dict(type='FCDiscriminator', channels=(64, 128, 256, 512)),
                source_branch='source', target_branch='target'),
           dict(type='MinEnt', weight=1e-3, aux_weight=2e-4, branch='target')])
