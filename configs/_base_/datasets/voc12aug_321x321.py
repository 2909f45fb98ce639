# Pascal VOC 2012 with image-level labels (the single-stage CAM reference setting,
# visinf/1-stage-wseg datasets/pascal_voc.py + configs/voc_resnet38.yaml): train on the
# 10,582 SBD-augmented images (ImageSets/Segmentation/train_aug.txt, SegmentationClassAug/),
# each labelled with the classes of its mask (as the reference derives them), masks dropped;
# validate on the 1,449 val images with their masks. The data root is VOC_ROOT (VOC2012).
data_root = '{{$VOC_ROOT:data/VOCdevkit/VOC2012}}'
num_classes = 21
crop_size = (321, 321)  # DATASET.CROP_SIZE
train_pipeline = [
    # MaskRandResizedCrop: torchvision RandomResizedCrop(321, scale=(0.9, 1.0)) (SCALE_FROM/TO),
    # default aspect ratios; bicubic image, nearest mask.
    dict(type='RandomResizedCrop', size=crop_size, scale=(0.9, 1.0), interpolation=2),
    dict(type='HorizontalFlip', p=0.5),  # MaskHFlip
    # MaskColourJitter(p=1.0): brightness/contrast/saturation 0.3, hue 0.1.
    dict(type='ColorJitter', brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1, p=1.0),
]
weak_train = dict(
    type='VOCDataset',
    data_root=data_root,
    split='train_aug',
    label_dir='SegmentationClassAug',
    pipeline=train_pipeline,
    with_label=False,
    image_labels='from_mask',
)
voc_val = dict(type='VOCDataset', data_root=data_root, split='val')
train_dataloader = dict(
    batch_size=16,  # TRAIN.BATCH_SIZE
    num_workers=8,  # TRAIN.NUM_WORKERS
    persistent_workers=True,
    sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(type='MultiBranchDataset', branches=dict(weak=weak_train)),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=voc_val,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='voc21')
test_evaluator = val_evaluator
# The reference tests multi-scale (1, 0.5, 1.5, 2) with flip (TEST.SCALES, TEST.FLIP):
# `tools/test.py --mode aug`.
inference_cfg = dict(
    mode='whole', crop_size=crop_size, stride=(214, 214), scales=(1.0, 0.5, 1.5, 2.0), flip=True
)
