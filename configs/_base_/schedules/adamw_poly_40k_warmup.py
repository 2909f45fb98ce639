# DAFormer's schedule (lhoyer/DAFormer configs/_base_/schedules/adamw.py, poly10warm.py and
# configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py), used by DACS /
# DAFormer / MIC: AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01, the head at 10x the learning
# rate; linear warm-up from 1e-6 x lr over 1500 iterations, then polynomial decay (power 1.0) to 0
# at 40k iterations; batch 2 (the dataset base's batch_size); evaluation every 4000 iterations.
# DAFormer also sets decay_mult 0 on norm / pos_block parameters (MiT); not here. mmcv multiplied
# the warm-up into a poly decay counted from iteration 0; here the poly decay starts at 1500, as
# mmseg 1.x configs write it (lr differs by < 4 %). custom_keys names the segmentor's head
# parameters: 'net.decoder' for smp networks (DeepLab-v2 has no separate segmentation head; add
# 'net.segmentation_head' for smp U-Net / FPN).
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'net.decoder': dict(lr_mult=10.0)}),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=4000))
