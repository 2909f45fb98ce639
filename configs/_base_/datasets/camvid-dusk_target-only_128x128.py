# CamVid dusk frames only (docs/datasets.md): adaptation of a day-trained model without the day
# data. train: unlabelled train 0001TP (62 dusk frames, labels never read; one branch,
# 'target'; no source dataset is built); val/test: labelled test 0001TP (62 dusk frames) in
# their order, 4 per batch: the test-time stream. Frames resized to 180x240 on load.
data_root = '{{$CAMVID_ROOT:data/camvid}}'
num_classes = 11
img_size = (180, 240)
crop_size = (128, 128)
target_train = dict(
    type='CamVidDataset',
    data_root=data_root,
    split='train',
    sequences=['0001TP'],
    resize=img_size,
    pipeline=[
        dict(type='RandomCrop', height=crop_size[0], width=crop_size[1]),
        dict(type='HorizontalFlip', p=0.5),
    ],
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
val_evaluator = dict(type='IoUMetric', protocol='camvid11')
test_evaluator = val_evaluator
inference_cfg = dict(crop_size=crop_size, stride=(85, 85))
