# DACS on CamVid day -> dusk at the ABN benchmark's budget (UNet-ResNet-18, 128x128 crops, 200
# iterations), as the SAC CamVid leaf: 100 ABN warm-up iterations (source CE, target-only BN
# statistics), then ClassMix self-training from a teacher initialised at iteration 100.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/dacs.py',  # DACS's teacher, quality labeller, ClassMix
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    type='Adapter',
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    # DACS's EMA (alpha_t = min(1 - 1/(t+1), 0.999)) from 100.
    teacher=dict(_base_.dacs_teacher, start_iter=100),
    # DAFormer's margins are rows of 512x1024 Cityscapes frames; 120 rows would drop most of a
    # 128 px crop.
    labellers=dict(teacher_quality=dict(_base_.teacher_quality, ignore_top=0, ignore_bottom=0)),
    terms=dict(src=_base_.dacs_source, mix=_base_.class_mix),
    bn_policy='target_only',  # as the ABN and SAC CamVid leaves
)
