# MoCo v2 on the unlabelled CamVid day + dusk frames at a real budget (issue 21, item 4): 10k
# iterations, until the InfoNCE loss is clearly below its chance value ln(1 + 128) = 4.86 (the
# 300-iteration run only reached 4.12). benchmarks/pretrained_encoder.py makes and caches it:
#   python benchmarks/pretrained_encoder.py \
#       configs/pretrain/mocov2_unet-resnet18_10k_camvid-day+dusk-128x128.py
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor (normalisation)
    '../_base_/datasets/pretrain_camvid-day+dusk_128x128.py',  # 367 frames, two 128x128 views
    '../_base_/pretrain/mocov2.py',  # MoCo v2, small-data queue and momentum
    '../_base_/schedules/pretrain_sgd_cosine_10k.py',
]
model = dict(segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor)
