# Built-in synthetic target scenes only (uda/data/synthetic.py): adaptation without the source
# data. train: unlabelled captured-look scenes (one branch, 'target'; no source dataset is
# built); val/test: labelled target scenes of a disjoint seed, in a fixed order, 4 per batch:
# the stream of test-time adaptation (whose labels only score the predictions).
scene_size = (96, 192)
target_train = dict(
    type='SyntheticDataset',
    style='target',
    num_samples=1000,
    seed=0,
    size=scene_size,
    pipeline=[dict(type='HorizontalFlip', p=0.5)],
    with_label=False,
)
target_val = dict(
    type='SyntheticDataset', style='target', num_samples=100, seed=1000, size=scene_size
)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(type='MultiBranchDataset', branches=dict(target=target_train)),
)
val_dataloader = dict(
    batch_size=4,  # test-time adaptation: BatchNorm statistics and one step per 4 images
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),  # a stream: fixed order
    collate_fn=dict(type='uda_collate'),
    dataset=target_val,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='cityscapes19', eval_protocol='synthetic9')
test_evaluator = val_evaluator
inference_cfg = dict(
    mode='whole', crop_size=(96, 96), stride=(64, 64), scales=(0.75, 1.0, 1.25), flip=True
)
