# Target oracle: the same network and budget trained on *labelled target* scenes. The upper
# bound that adaptation methods are compared with (the labelled branch is named 'source' because
# SourceCE reads it; its images are target-style).
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/synthetic_shift.py',
    '../_base_/methods/source_only.py',
    '../_base_/schedules/adamw_poly_400.py',
]
target_labelled = dict(
    type='SyntheticDataset',
    style='target',
    num_samples=1000,
    seed=0,
    size=_base_.scene_size,
    pipeline=_base_.train_pipeline,
)
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, source=target_labelled)))
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
)
