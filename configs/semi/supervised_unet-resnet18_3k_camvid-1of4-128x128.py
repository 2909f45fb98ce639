# Supervised-only on CamVid with 1/4 of the train frames labelled, at the converged budget
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
