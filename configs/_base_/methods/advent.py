# ADVENT's AdvEnt (Vu et al., CVPR 2019, arXiv:1811.12833): adversarial alignment of weighted
# self-information maps -p*log2(p)/log2(C). Multi-level as in the reference (MULTI_LEVEL=True):
# main + auxiliary head (segmentor aux_head on the penultimate encoder stage), each with an
# FCDiscriminator (64-128-256-512-1). Weights: source CE 1.0 / aux 0.1, adversarial
# 1e-3 / 2e-4, BCE GAN loss. Needs a schedule with optim_wrapper.discriminators.
model = dict(
    type='Adapter',
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, aux_weight=0.1, branch='source'),
        ent=dict(
            type='EntropyAdversarial',
            weight=1e-3,
            aux_weight=2e-4,
            gan_loss='bce',
            discriminator=dict(type='FCDiscriminator', channels=(64, 128, 256, 512)),
            source_branch='source',
            target_branch='target',
        ),
    ),
)
