# The single-stage CAM reference optimiser (visinf/1-stage-wseg configs/voc_resnet38.yaml,
# base_trainer.py, models/backbones/base_net.py): SGD lr 1e-3 (NET.LR), momentum 0.9
# (NET.MOMENTUM), weight decay 5e-4 (NET.WEIGHT_DECAY), constant learning rate (the reference
# never changes it); layers trained from scratch (everything but the encoder) at 10x the
# learning rate (base_net._lr_mult: 1, 2, 10, 20 for old/new weights/biases; biases' 2x/20x
# and zero decay are not reproduced). 24 epochs of 10,582 images at batch 16 = 15,873
# iterations (NUM_EPOCHS), validation and checkpoint every 1,000.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(
        custom_keys={
            'net.decoder': dict(lr_mult=10.0),
            'net.segmentation_head': dict(lr_mult=10.0),
            'gci': dict(lr_mult=10.0),
        }
    ),
)
param_scheduler = [dict(type='ConstantLR', factor=1.0, begin=0, end=15873, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=15873, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=1000))
