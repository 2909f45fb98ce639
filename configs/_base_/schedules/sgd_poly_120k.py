# Reference schedule of ADVENT's MinEnt (one optimiser; DeepLab-v2 ResNet-101, batch 1): SGD
# lr 2.5e-4, momentum 0.9, weight decay 5e-4, polynomial decay (power 0.9) over 250k
# iterations, training stops early at 120k (valeoai/ADVENT advent/domain_adaptation/config.py:
# MAX_ITERS / EARLY_STOP). The reference trains the classifier heads at 10x the learning rate:
# add optim_wrapper.paramwise_cfg=dict(custom_keys={'<head name>': dict(lr_mult=10)}) with the
# heads' parameter names inside the segmentor. sgd-adam_poly_120k.py adds the discriminators.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=250000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=120000, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=2000))
