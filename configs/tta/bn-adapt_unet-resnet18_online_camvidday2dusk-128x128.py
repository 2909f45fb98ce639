# Test-time adaptation (bn-adapt) of a UNet-ResNet-18 trained on CamVid day frames
# (configs/source-only/source-only_unet-resnet18_200_camvidday2dusk-128x128.py), on the dusk
# test stream (tools/adapt.py, or tools/test.py THIS CHECKPOINT).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvid-dusk_target-only_128x128.py',  # dusk stream; no day data
    '../_base_/schedules/test_time.py',  # hooks of a test run, one CPU thread
    '../_base_/methods/tta_bn.py',  # terms, optimiser and TestTimeAdaptLoop settings
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
)
# Test time only: no training loop (the dataset base's unlabelled train split is for
# source-free training).
train_dataloader = None
