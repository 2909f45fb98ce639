# ABN baseline, synthia -> cityscapes: source cross-entropy, BatchNorm statistics from the target.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthia2cityscapes_512x512.py',
    '../_base_/methods/abn.py',  # SourceCE + target-only BN statistics
    '../_base_/schedules/adamw_poly_1k.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
