# Semi-supervised CamVid, 1/4 of the 367 train frames labelled: weak/strong with CutMix, threshold
# 0.95 (UniMatch fixmatch.py).
# UNet-ResNet-18, 128x128 crops, 200 iterations, the CamVid benchmark budget; random-init
# encoder (the SSL-pretrained encoder of the pretraining issue is wired in separately).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvid_semi_128x128.py',  # labeled / unlabeled / unlabeled_mix
    '../_base_/methods/fixmatch.py',
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
# 1/4: ceil(367 / 4) = 92 labelled frames; the three branches share the split.
split = dict(_base_.split, fraction=1 / 4)
train_dataloader = dict(
    dataset=dict(
        branches=dict(
            labeled=dict(**split),
            unlabeled=dict(**split),
            unlabeled_mix=dict(**split),
        )
    )
)
