# AdamW with polynomial decay, 400 iterations (the demo budget: minutes on a 2-core CPU),
# validation and checkpoint every 200.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=400, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=400, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=200, max_keep_ckpts=2))
