# Semi-supervised CamVid, 1/8 of the 367 train frames labelled: two strong CutMix views + feature
# perturbation (UniMatch unimatch.py).
# UNet-ResNet-18, 128x128 crops, 200 iterations, the CamVid benchmark budget; random-init
# encoder (the SSL-pretrained encoder of the pretraining issue is wired in separately).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvid_semi_128x128.py',  # labeled / unlabeled / unlabeled_mix
    '../_base_/methods/unimatch.py',
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
