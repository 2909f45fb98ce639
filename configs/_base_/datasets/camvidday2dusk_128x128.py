# CamVid day -> dusk: a real domain shift inside CamVid (docs/datasets.md). Labelled source =
# train sequences 0006R0 + 0016E5 (305 day frames); unlabelled target = train 0001TP (62 dusk
# frames, labels never read); target val/test = test 0001TP (62 dusk frames, labelled).
# Frames (360x480) are resized to 180x240 on load; training takes random 128x128 crops, so a
# 2-core CPU can run the benchmark. Scored on the 11 CamVid classes (void = ignore).
# The data root is the CAMVID_ROOT environment variable (default: data/camvid).
data_root = '{{$CAMVID_ROOT:data/camvid}}'
num_classes = 11
img_size = (180, 240)
crop_size = (128, 128)
train_pipeline = [
    dict(type='RandomCrop', height=crop_size[0], width=crop_size[1]),
    dict(type='HorizontalFlip', p=0.5),
]
source_train = dict(
    type='CamVidDataset',
    data_root=data_root,
    split='train',
    sequences=['0006R0', '0016E5'],
    resize=img_size,
    pipeline=train_pipeline,
)
target_train = dict(
    type='CamVidDataset',
    data_root=data_root,
    split='train',
    sequences=['0001TP'],
    resize=img_size,
    pipeline=train_pipeline,
    with_label=False,
)
target_val = dict(
    type='CamVidDataset', data_root=data_root, split='test', sequences=['0001TP'], resize=img_size
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
val_evaluator = dict(type='IoUMetric', protocol='camvid11')
test_evaluator = val_evaluator
# Slide windows for `tools/test.py --mode slide` (uda.evaluation.inference.resolve_test_cfg):
# the training crop, stride 2/3 of it as mmseg; model.test_cfg overrides them.
inference_cfg = dict(crop_size=crop_size, stride=(85, 85))
