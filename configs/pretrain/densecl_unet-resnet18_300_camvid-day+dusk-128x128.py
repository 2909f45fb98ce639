# DenseCL (dense contrastive) pretraining of the UNet-ResNet-18 encoder on the unlabelled CamVid
# day + dusk training images (~9 min of CPU time at one thread, measured). Writes
# work_dirs/<this name>/encoder.pth, the encoder of configs/_base_/models/unet_resnet18.py.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor (normalisation)
    '../_base_/datasets/pretrain_camvid-day+dusk_128x128.py',  # 367 frames, two 128x128 views
    '../_base_/pretrain/densecl.py',  # DenseCL, small-data queues and momentum
    '../_base_/schedules/pretrain_sgd_cosine_300.py',
]
model = dict(segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor)
