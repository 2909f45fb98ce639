# MIC (on DACS) on CamVid day -> dusk at the ABN benchmark's budget (UNet-ResNet-18, 128x128
# crops, 200 iterations): the DACS CamVid leaf (100 ABN warm-up iterations, then ClassMix from
# a teacher initialised at iteration 100) plus MIC's masked consistency on the same teacher
# pseudo-labels, starting with the teacher too.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/dacs_mic.py',  # SourceCE + ClassMix + MaskedConsistency + teacher hook
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(start_iter=100),
    # DAFormer's margins are rows of 512x1024 Cityscapes frames: none on 128 px crops.
    labellers=dict(teacher_quality=dict(ignore_top=0, ignore_bottom=0)),
    # MIC's 64 px blocks are 1/8 of its 512 px crop; 16 px keeps 1/8 of 128 px (8x8 grid).
    terms=dict(mic=dict(block_size=16)),
    bn_policy='target_only',  # as the ABN and SAC CamVid leaves
)
