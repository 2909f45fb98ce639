# MoCo v2 pretraining of the UNet-ResNet-18 encoder on the unlabelled source + target training
# scenes of the built-in synthetic shift (~4-5 min of CPU time at one thread, estimated). Writes
# work_dirs/<this name>/encoder.pth, the encoder of configs/_base_/models/unet_resnet18.py.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor (normalisation)
    '../_base_/datasets/pretrain_synthetic-shift_96x192.py',  # 2000 scenes, two 96x96 views
    '../_base_/pretrain/mocov2.py',  # MoCo v2, small-data queue and momentum
    '../_base_/schedules/pretrain_sgd_cosine_300.py',
]
model = dict(segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor)
