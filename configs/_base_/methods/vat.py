# Virtual adversarial training (Miyato et al., TPAMI 2018, arXiv:1704.03976), per pixel, on the
# target branch: source cross-entropy + KL(p(y|x) || p(y|x + r_adv)) with the clean prediction
# fixed and r_adv from one power iteration (takerum/vat_tf vat.py).
model = dict(
    type='Adapter',
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, branch='source'),
        vat=dict(
            type='VirtualAdversarial',
            weight=1.0,  # alpha
            # Per-image L2 norm in the normalised input space: the paper's CIFAR-10 value
            # (32x32); the same eps is a weaker per-pixel change on larger images (see the
            # term's docstring for the scaling).
            eps=8.0,
            xi=1e-6,  # power-iteration step
            power_iters=1,  # K
            branch='target',
        ),
    ),
    bn_policy='train',
)
