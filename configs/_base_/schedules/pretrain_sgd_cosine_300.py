# Pretraining schedule (tools/pretrain.py): SGD lr 0.03, momentum 0.9, weight decay 1e-4 with
# a cosine decay to 0, as MoCo v2 (facebookresearch/moco main_moco.py: --lr 0.03 for batch 256,
# --momentum 0.9, --wd 1e-4, --cos) and DINO's ResNet-50 recipe (facebookresearch/dino
# README: --optimizer sgd --lr 0.03 --weight_decay 1e-4). The lr is not scaled down linearly
# for the batch of 32 (0.00375): the short CPU runs here would barely move the encoder.
# 300 iterations x 32 images: ~26 passes over the 367 CamVid day+dusk frames, ~7 min of CPU
# time at one thread for MoCo v2 (docs/pretraining.md). No validation: the encoder is
# evaluated downstream.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4)
)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=300, eta_min=0.0, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=10**9)
# No validation, so no image panels (interval 0: never).
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100, max_keep_ckpts=1),
    visualization=dict(interval=0, draw_val=False),
)
