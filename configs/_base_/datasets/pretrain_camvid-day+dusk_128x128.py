# Unlabelled CamVid day + dusk training images for self-supervised pretraining (tools/pretrain.py):
# the 305 day frames (train 0006R0 + 0016E5, the day->dusk source) and the 62 dusk frames
# (train 0001TP, the target's training images) of configs/_base_/datasets/camvidday2dusk_128x128.py,
# labels never read; the dusk test frames (the benchmark's val/test set) are not used.
# Frames are resized to 180x240 on load as in the benchmark. Each draw gives two views of one
# frame (MoCo v2 / DenseCL crops, facebookresearch/moco main_moco.py aug_plus):
# RandomResizedCrop to the 128x128 training crop of the benchmark with scale (0.2, 1) and the
# default aspect ratios (3/4, 4/3), then a horizontal flip with p 0.5, drawn independently per
# view. The photometric part runs on the device (model.photometric).
# The data root is the CAMVID_ROOT environment variable (default: data/camvid).
data_root = '{{$CAMVID_ROOT:data/camvid}}'
img_size = (180, 240)
crop_size = (128, 128)
pretrain_images = dict(
    type='UnlabelledImages',
    datasets=[
        dict(
            type='CamVidDataset',
            data_root=data_root,
            split='train',
            sequences=['0006R0', '0016E5'],
            resize=img_size,
        ),
        dict(
            type='CamVidDataset',
            data_root=data_root,
            split='train',
            sequences=['0001TP'],
            resize=img_size,
        ),
    ],
)
two_views = dict(
    query=[
        dict(type='RandomResizedCrop', size=crop_size, scale=(0.2, 1.0)),
        dict(type='HorizontalFlip', p=0.5),
    ],
    key=[
        dict(type='RandomResizedCrop', size=crop_size, scale=(0.2, 1.0)),
        dict(type='HorizontalFlip', p=0.5),
    ],
)
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(
        type='MultiBranchDataset',
        branches=dict(images=dict(dataset=pretrain_images, views=two_views)),
    ),
)
