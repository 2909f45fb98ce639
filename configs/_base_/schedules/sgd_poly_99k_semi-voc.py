# UniMatch's Pascal schedule (LiheYoung/UniMatch unimatch.py, configs/pascal.yaml): SGD lr 0.001
# for the backbone and 10x (lr_multi 10.0) for every other parameter, momentum 0.9, weight
# decay 1e-4, lr = lr0 * (1 - iter / total) ** 0.9, 80 epochs over the unlabelled loader. At
# 1/16 of trainaug (9920 unlabelled images), batch 2 per GPU x 4 GPUs: ceil(9920 / 4) // 2 =
# 1240 iterations per epoch, x 80 = 99200 iterations (92 labelled of train: 10490 unlabelled ->
# 104880; set train_cfg.max_iters and the PolyLR end for other splits).
# The head multiplier names smp's non-encoder modules (DeepLab-v3+ decoder and head).
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'net.decoder': dict(lr_mult=10.0),
            'net.segmentation_head': dict(lr_mult=10.0),
        }
    ),
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=99200, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=99200, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=4000))
