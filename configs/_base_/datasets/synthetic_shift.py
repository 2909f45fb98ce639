# Built-in synthetic source -> target shift (uda/data/synthetic.py), rendered on the fly.
# source: labelled rendered-look scenes; target: unlabelled captured-look scenes;
# val/test: labelled target scenes from a disjoint seed. Labels are Cityscapes trainIds and
# the mIoU is over the 9 classes the scenes contain (protocol synthetic9).
scene_size = (96, 192)
train_pipeline = [dict(type='HorizontalFlip', p=0.5)]
source_train = dict(
    type='SyntheticDataset',
    style='source',
    num_samples=1000,
    seed=0,
    size=scene_size,
    pipeline=train_pipeline,
)
target_train = dict(
    type='SyntheticDataset',
    style='target',
    num_samples=1000,
    seed=0,
    size=scene_size,
    pipeline=train_pipeline,
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
    dataset=dict(
        type='MultiBranchDataset', branches=dict(source=source_train, target=target_train)
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=target_val,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='cityscapes19', eval_protocol='synthetic9')
test_evaluator = val_evaluator
# Evaluation-time inference (model.test_cfg; uda/evaluation/inference.py resolve_test_cfg).
# 'whole' by default; `tools/test.py --mode slide` uses the windows, `--mode aug` the scales
# and flip.
inference_cfg = dict(
    mode='whole', crop_size=(96, 96), stride=(64, 64), scales=(0.75, 1.0, 1.25), flip=True
)
