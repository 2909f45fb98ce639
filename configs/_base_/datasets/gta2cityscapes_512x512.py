# GTA5 -> Cityscapes: labelled GTA5 frames (resized to 1280x720) to unlabelled Cityscapes train
# (resized to 1024x512); target val = Cityscapes val at 1024x512 (labels nearest-neighbour),
# 19 classes. Roots: GTA5_ROOT and CITYSCAPES_ROOT environment variables (docs/datasets.md).
gta5_root = '{{$GTA5_ROOT:data/gta5}}'
cityscapes_root = '{{$CITYSCAPES_ROOT:data/cityscapes}}'
num_classes = 19
crop_size = (512, 512)
train_pipeline = [
    dict(type='RandomCrop', height=crop_size[0], width=crop_size[1]),
    dict(type='HorizontalFlip', p=0.5),
]
source_train = dict(
    type='GTA5Dataset', data_root=gta5_root, resize=(720, 1280), pipeline=train_pipeline
)
target_train = dict(
    type='CityscapesDataset',
    data_root=cityscapes_root,
    split='train',
    with_label=False,
    resize=(512, 1024),
    pipeline=train_pipeline,
)
target_val = dict(
    type='CityscapesDataset', data_root=cityscapes_root, split='val', resize=(512, 1024)
)
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(
        type='MultiBranchDataset', branches=dict(source=source_train, target=target_train)
    ),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=target_val,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='cityscapes19')
test_evaluator = val_evaluator
# Slide windows for `tools/test.py --mode slide` (uda.evaluation.inference.resolve_test_cfg):
# the training crop, stride 2/3 of it as mmseg; model.test_cfg overrides them.
inference_cfg = dict(crop_size=crop_size, stride=(341, 341))
