# Supervised-only on CamVid with 1/8 of the train frames labelled, at the converged budget
# (issue 21): 3k iterations, validated on CamVid's val split every 250
# iterations; benchmarks/converged.py scores the test frames once and caches the checkpoint that
# the semi-supervised methods warm-start from.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvid_semi-valsplit_128x128.py',  # labeled / unlabeled, val split
    '../_base_/methods/supervised.py',
    '../_base_/schedules/adamw_poly_3k.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
