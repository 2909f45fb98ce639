# ADVENT's AdvEnt+MinEnt on CamVid day -> dusk, multi-level, at the budget and network of
# configs/abn/abn_unet-resnet18_200_camvidday2dusk-128x128.py (UNet-ResNet-18, 128x128 crops,
# 200 iterations), to compare with ABN (benchmarks/sweep.py --preset adversarial-camvid).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/advent_minent.py',  # SourceCE + EntropyAdversarial + MinEnt
    '../_base_/schedules/adamw-adam_poly_200.py',  # AdamW student + Adam discriminators
]
# Multi-level: the auxiliary head on the penultimate encoder stage (stride 16, 256 channels).
model = dict(
    segmentor=dict(
        _base_.segmentor, num_classes=_base_.num_classes, aux_head=dict(in_index=-2, channels=64)
    ),
    data_preprocessor=_base_.data_preprocessor,
    # Adaptive BN: target-only BN statistics; without them these runs collapse.
    bn_policy='target_only',
)
