# Reference schedule of AdaptSegNet / ADVENT (DeepLab-v2 ResNet-101, batch 1): the segmentor
# optimiser and schedule of sgd_poly_120k.py (SGD 2.5e-4, poly 0.9 over 250k, stop at 120k;
# AdaptSegNet's own script stops at 150k), plus the discriminators with Adam 1e-4, betas
# 0.9/0.99, on the same polynomial decay. See adamw-adam_poly_400.py for how the two
# optimisers are built.
_base_ = ['./sgd_poly_120k.py']
optim_wrapper = dict(
    _delete_=True,
    constructor='AdapterOptimWrapperConstructor',
    student=_base_.optim_wrapper,
    discriminators=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
    ),
)
