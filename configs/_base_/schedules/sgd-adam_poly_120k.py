# Reference schedule of AdaptSegNet / ADVENT (DeepLab-v2 ResNet-101, batch 1): the segmentor
# with SGD lr 2.5e-4, momentum 0.9, weight decay 5e-4; the discriminators with Adam 1e-4,
# betas 0.9/0.99; both decay polynomially (power 0.9) over 250k iterations and training stops
# early at 120k (ADVENT's MAX_ITERS / EARLY_STOP). The reference trains the classifier head at
# 10x the learning rate: add paramwise_cfg=dict(custom_keys={'<head name>': dict(lr_mult=10)})
# with the head's parameter name inside the segmentor. See adamw-adam_poly_400it.py for how
# the two optimisers are built.
optim_wrapper = dict(
    constructor='AdapterOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4)),
    discriminators=dict(type='OptimWrapper',
                        optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=250000,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=120000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'))
