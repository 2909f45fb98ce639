# ABN on CamVid day -> dusk: the real-data baseline every adaptation method must beat
# (benchmarks/sweep.py --preset camvid-day2dusk runs it with 3 seeds).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day->dusk, dusk test, 11 classes
    '../_base_/methods/abn.py',  # SourceCE + target-only BN statistics
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
