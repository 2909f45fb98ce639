# The SAC reference schedule (sgd_poly_40k_sac.py) for methods with discriminators: its SGD
# optimiser and poly decay for the segmentor, Adam 1e-4 (betas 0.9/0.99, AdaptSegNet / ADVENT)
# for the discriminators on the same decay; see adamw-adam_poly_400.py for how the two
# optimisers are built.
_base_ = ['./sgd_poly_40k_sac.py']
optim_wrapper = dict(
    _delete_=True,
    constructor='AdapterOptimWrapperConstructor',
    student=_base_.optim_wrapper,
    discriminators=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
    ),
)
