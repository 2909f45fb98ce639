# Test-time adaptation (sac-tta) of a UNet-ResNet-18 trained on the synthetic source scenes, on the
# stream of target scenes (tools/adapt.py CONFIG_OR_CHECKPOINT ... --method, or
# tools/test.py THIS CHECKPOINT: the test loop adapts batch by batch, then predicts).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_target-only.py',  # target stream; no source data
    '../_base_/schedules/test_time.py',  # hooks of a test run, one CPU thread
    '../_base_/methods/tta_sac.py',  # terms, optimiser and TestTimeAdaptLoop settings
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
)
# Test time only: no training loop (the dataset base's unlabelled train split is for
# source-free training).
train_dataloader = None
