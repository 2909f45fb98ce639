# The demo budget (400 iterations) for methods with discriminators: two optimisers through
# AdapterOptimWrapperConstructor (uda/engine/optim_constructor.py), which builds an
# OptimWrapperDict with
#   student:        model.student (the segmentor), AdamW as in adamw_poly_400.py;
#   discriminators: the modules terms declare under that name (terms.<name>.discriminator),
#                   Adam 1e-4, betas 0.9/0.99 (AdaptSegNet / ADVENT).
# The student optimiser never holds discriminator parameters. Each wrapper may be an
# AmpOptimWrapper and take accumulative_counts / clip_grad. param_scheduler is keyed by the
# same names, so each optimiser has its own schedule.
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
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', interval=100),
    rng_state=dict(type='RNGStateHook'),  # RNG states in checkpoints: exact --resume
    cpu_threads=dict(type='CPUThreadsHook', num_threads=1),  # same numbers on any CPU
)
