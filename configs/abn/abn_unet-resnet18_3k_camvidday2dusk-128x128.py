# ABN on CamVid day -> dusk at the converged budget (issue 21): 3k iterations,
# validated on CamVid's val split every 250 iterations. benchmarks/converged.py trains
# it per seed, scores the dusk test frames once and caches the checkpoint that the adaptation
# methods warm-start from.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk-valsplit_128x128.py',  # day->dusk, val split, dusk test
    '../_base_/methods/abn.py',  # SourceCE + target-only BN statistics
    '../_base_/schedules/adamw_poly_3k.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
