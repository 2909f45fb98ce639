# CamVid in-domain (no shift): train on all 367 train frames, validate/test on the 233 test
# frames. Frames (360x480) resized to 180x240 on load, random 128x128 crops, as the CamVid
# day -> dusk benchmark (camvidday2dusk_128x128.py), so a 2-core CPU can run it. The branch
# 'source' has pixel labels; weak leaves replace it (camvid_weak_128x128.py).
data_root = '{{$CAMVID_ROOT:data/camvid}}'
num_classes = 11
img_size = (180, 240)
crop_size = (128, 128)
train_pipeline = [
    dict(type='RandomCrop', height=crop_size[0], width=crop_size[1]),
    dict(type='HorizontalFlip', p=0.5),
]
camvid_train = dict(
    type='CamVidDataset',
    data_root=data_root,
    split='train',
    resize=img_size,
    pipeline=train_pipeline,
)
camvid_test = dict(type='CamVidDataset', data_root=data_root, split='test', resize=img_size)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(type='MultiBranchDataset', branches=dict(source=camvid_train)),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=camvid_test,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='camvid11')
test_evaluator = val_evaluator
inference_cfg = dict(crop_size=crop_size, stride=(85, 85))
