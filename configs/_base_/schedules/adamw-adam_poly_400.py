# The demo budget (400 iterations) for methods with discriminators: two optimisers through
# AdapterOptimWrapperConstructor (uda/engine/optim_constructor.py), which builds an
# OptimWrapperDict with
#   student:        model.student (the segmentor), AdamW as in adamw_poly_400.py;
#   discriminators: the modules terms declare under that name (terms.<name>.discriminator),
#                   Adam 1e-4, betas 0.9/0.99 (AdaptSegNet / ADVENT).
# The student optimiser never holds discriminator parameters. Each wrapper may be an
# AmpOptimWrapper and take accumulative_counts / clip_grad. param_scheduler is keyed by the
# same names, so each optimiser has its own schedule.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    constructor='AdapterOptimWrapperConstructor',
    student=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4)),
    discriminators=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
    ),
)
param_scheduler = dict(
    student=[dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=400, by_epoch=False)],
    discriminators=[dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=400, by_epoch=False)],
)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=200, max_keep_ckpts=2))
