# UniMatch's Cityscapes schedule (LiheYoung/UniMatch unimatch.py, configs/cityscapes.yaml): SGD
# lr 0.005 for backbone and head alike (lr_multi 1.0), momentum 0.9, weight decay 1e-4,
# lr = 0.005 * (1 - iter / total) ** 0.9, 240 epochs over the unlabelled loader. At 1/16 (2789
# unlabelled images), batch 2 per GPU x 4 GPUs and DistributedSampler: ceil(2789 / 4) // 2 =
# 349 iterations per epoch, x 240 = 83760 iterations (other splits: 1/8 2603 -> 78000, 1/4
# 2231 -> 66960, 1/2 1487 -> 44640; set train_cfg.max_iters and the PolyLR end).
# UniMatch evaluates every epoch and reports the best; here every 4000 iterations.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=1e-4)
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=83760, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=83760, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=4000))
