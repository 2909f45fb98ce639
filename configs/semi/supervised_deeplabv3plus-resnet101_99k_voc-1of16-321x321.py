# Supervised only: SourceCE on the labelled branch only; Pascal VOC 2012 + SBD, UniMatch split
# 1/16 of trainaug (662 labelled), at UniMatch's settings (LiheYoung/UniMatch configs/pascal.yaml,
# threshold 0.95). Difference: the last checkpoint is reported, not the best epoch.
_base_ = [
    '../_base_/models/deeplabv3plus-unimatch_resnet101.py',  # UniMatch's network + init
    '../_base_/datasets/voc_semi_321x321.py',
    '../_base_/methods/supervised.py',
    '../_base_/schedules/sgd_poly_99k_semi-voc.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
