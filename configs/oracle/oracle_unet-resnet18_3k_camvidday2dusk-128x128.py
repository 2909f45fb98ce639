# Target oracle of CamVid day -> dusk at the converged budget: the labelled dusk train frames
# (0001TP) instead of the day frames, everything else as the converged ABN leaf
# (configs/abn/abn_unet-resnet18_3k_camvidday2dusk-128x128.py).
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvidday2dusk-valsplit_128x128.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_3k.py',
]
target_labelled = dict(_base_.target_train, with_label=True)
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, source=target_labelled)))
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
