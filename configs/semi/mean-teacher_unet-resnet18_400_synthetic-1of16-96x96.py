# Semi-supervised on the built-in synthetic scenes, 1/16 labelled: EMA teacher (0.996, ramped)
# labels the weak view; two strong CutMix views.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/synthetic_semi.py',
    '../_base_/methods/mean_teacher.py',
    '../_base_/schedules/adamw_poly_400.py',
]
model = dict(segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor)
