# The SAC reference optimiser (visinf/da-sac configs/deeplabv2_resnet101_train.yaml): SGD,
# lr 2.5e-4, momentum 0.9, weight decay 5e-4, polynomial decay. The iteration budget (40k,
# validation and checkpoint every 2k) is ours.
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
