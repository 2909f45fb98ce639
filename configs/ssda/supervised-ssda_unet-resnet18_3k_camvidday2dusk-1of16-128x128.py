# Supervised on the 1/16 labelled dusk train frames alone (no source, no unlabelled frames): the
# label-only baseline of semi-supervised domain adaptation (issue 21), at the converged budget of
# the CamVid baselines (3k iterations), scored once on the dusk test frames.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvidday2dusk-ssda_128x128.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_3k.py',
]
labelled = _base_.train_dataloader.dataset.branches.target_labeled
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, target_labeled=labelled)))
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    terms=dict(src=dict(branch='target_labeled')),
)
train_cfg = dict(val_interval=3000)
