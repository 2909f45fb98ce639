# The full pipeline (source CE + feature alignment + SAC + ClassMix + MIC) on CamVid
# day -> dusk at the ABN benchmark's budget (UNet-ResNet-18, 128x128 crops, 200 iterations), as
# configs/sac/sac_unet-resnet18_200_camvidday2dusk-128x128.py: 100 warm-up iterations, then 100
# iterations of SAC, ClassMix and MIC from the shared teacher initialised at iteration 100.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/full_pipeline.py',  # SourceCE + FeatureAdversarial + SAC + ClassMix + MIC
    '../_base_/schedules/adamw-adam_poly_200.py',  # AdamW student + Adam discriminators
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(momentum=0.99, interval=1, start_iter=100),  # as the SAC CamVid leaf
    teachers=dict(dacs=dict(start_iter=100)),  # DACS's EMA from 100, as the DACS CamVid leaf
    labellers=dict(
        sac=dict(num_images=2),
        # DAFormer's margins are rows of 512x1024 Cityscapes frames; 120 rows would drop most
        # of a 128 px crop.
        teacher_quality=dict(ignore_top=0, ignore_bottom=0),
    ),
    terms=dict(
        sac=dict(weight=1.0),
        # MIC's 64 px blocks are 1/8 of its 512 px crop; 16 px keeps 1/8 of 128 px (8x8 grid).
        mic=dict(block_size=16),
    ),
    bn_policy='target_only',  # as the SAC and ABN CamVid leaves
)
