# AdaptSegNet (Tsai et al., CVPR 2018, arXiv:1802.10349): output-space adversarial alignment.
# Multi-level: the main head and the auxiliary head (penultimate encoder stage; the segmentor
# needs aux_head=dict(in_index=-2, ...)) each get a fully-convolutional discriminator
# (4x4 convs stride 2, 64-128-256-512-1, LeakyReLU 0.2) on softmax outputs. Weights: source CE
# 1.0 (+0.1 on the aux head), adversarial 1e-3 (main) / 2e-4 (aux). The discriminators have
# their own optimiser: use a schedule with optim_wrapper.discriminators (e.g. *-adam_poly_*).
model = dict(
    type='Adapter',
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, aux_weight=0.1, branch='source'),
        out=dict(
            type='OutputAdversarial',
            weight=1e-3,
            aux_weight=2e-4,
            gan_loss='bce',
            discriminator=dict(type='FCDiscriminator', channels=(64, 128, 256, 512)),
            source_branch='source',
            target_branch='target',
        ),
    ),
)
