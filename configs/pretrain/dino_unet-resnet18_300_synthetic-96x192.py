# DINO pretraining of the UNet-ResNet-18 encoder on the unlabelled source + target training
# scenes of the built-in shift: 2 global 96x96 crops + 2 local 64x64 crops, batch 16
# (~7 min of CPU time at one thread, estimated). Writes work_dirs/<this name>/encoder.pth.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor (normalisation)
    '../_base_/datasets/pretrain_synthetic-shift_96x192.py',  # 2000 scenes
    '../_base_/pretrain/dino.py',  # DINO, small-data prototypes and momentum
    '../_base_/schedules/pretrain_sgd_cosine_300.py',
]
model = dict(segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor)
local_size = (
    64,
    64,
)  # 96/224 of the 96 px crop is 41 px; 64: a multiple of 32 (the encoder stride)
_global = [
    dict(type='RandomResizedCrop', size=_base_.crop_size, scale=_base_.global_crops_scale),
    dict(type='HorizontalFlip', p=0.5),
]
_local = [
    dict(type='RandomResizedCrop', size=local_size, scale=_base_.local_crops_scale),
    dict(type='HorizontalFlip', p=0.5),
]
train_dataloader = dict(
    batch_size=16,
    dataset=dict(
        branches=dict(
            images=dict(
                views=dict(
                    _delete_=True, global1=_global, global2=_global, local1=_local, local2=_local
                )
            )
        )
    ),
)
