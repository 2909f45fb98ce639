# SAC on CamVid day -> dusk warm-started from a converged ABN checkpoint, as the paper does
# (visinf/da-sac: ABN to convergence, then SAC from it; issue 21): 1k self-training iterations,
# teacher from iteration 0, BN frozen at the ABN statistics (sac.py's 'eval', the reference), scored
# once on the dusk test frames. Give the checkpoint:
#   CKPT=$(python benchmarks/converged.py --checkpoint ABN --seeds 0 | tail -n 1)
#   python tools/train.py configs/sac/sac_unet-resnet18_1k_camvidday2dusk-128x128.py \
#       --cfg-options load_from=$CKPT
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/sac.py',  # SourceCE + SACSelfTraining + teacher hook
    '../_base_/schedules/adamw_poly_1k.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    labellers=dict(sac=dict(num_images=2)),  # 2 target images x 4 views, as the 200-it leaf
)
train_cfg = dict(val_interval=1000)  # the dusk test frames once, at the end
