# Target oracle on CamVid day -> dusk: the same network and budget trained on the *labelled*
# dusk frames (train 0001TP), evaluated on test 0001TP like ABN. The labelled branch is named
# 'source' because SourceCE reads it; its frames are the target's.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvidday2dusk_128x128.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_200.py',
]
target_labelled = dict(_base_.target_train, with_label=True)
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, source=target_labelled)))
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
