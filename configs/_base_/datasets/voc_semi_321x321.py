# Semi-supervised Pascal VOC 2012 at UniMatch's settings (LiheYoung/UniMatch configs/pascal.yaml,
# dataset/semi.py): the 10582 SBD-augmented training images (ImageSets/Segmentation/
# trainaug.txt, labels SegmentationClassAug/), random rescale 0.5-2.0, 321x321 crop (padded:
# image 0, mask 255 = ignore), horizontal flip; batch 2 per GPU (UniMatch: 4 GPUs). Split:
# UniMatch's splits/pascal/1_16/{labeled,unlabeled}.txt as they are (662 / 9920), matched to
# the images by their JPEGImages/ path (UniMatch's SegmentationClass column is its augmented
# label folder; labels come from label_dir here). For the 92 ... 1464 splits of the official
# train set use split_dir=.../pascal/92 (the images are still drawn from trainaug).
# Val: the 1449 val images, whole (UniMatch evaluate 'original').
# VOC_ROOT: the VOC2012 folder; UNIMATCH_SPLITS: UniMatch's splits/ folder.
data_root = '{{$VOC_ROOT:data/VOCdevkit/VOC2012}}'
split_dir = '{{$UNIMATCH_SPLITS:splits}}/pascal/1_16'
num_classes = 21
crop_size = (321, 321)
train_pipeline = [
    dict(type='RandomScale', scale_limit=(-0.5, 1.0), p=1.0),
    dict(
        type='RandomCrop',
        height=crop_size[0],
        width=crop_size[1],
        pad_if_needed=True,
        pad_position='top_left',
        fill=0,
        fill_mask=255,
    ),
    dict(type='HorizontalFlip', p=0.5),
]
voc_train = dict(
    type='VOCDataset',
    data_root=data_root,
    split='trainaug',
    label_dir='SegmentationClassAug',
    pipeline=train_pipeline,
)
labeled = dict(
    type='SemiSplit', dataset=voc_train, part='labeled', split_dir=split_dir, seed_offset=0
)
unlabeled = dict(
    type='SemiSplit', dataset=voc_train, part='unlabeled', split_dir=split_dir, seed_offset=1
)
unlabeled_mix = dict(unlabeled, seed_offset=2)
val_set = dict(type='VOCDataset', data_root=data_root, split='val', label_dir='SegmentationClass')
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    # The CutMix partner of unlabelled image i is another crop of the same image i (its own
    # augmentation draw, seed_offset 2), as UniMatch's zip(loader_u, loader_u) over one sampler
    # (LiheYoung/UniMatch unimatch.py:121); drop `follow` for independently drawn partners.
    sampler=dict(
        type='MultiBranchInfiniteSampler', shuffle=True, follow=dict(unlabeled_mix='unlabeled')
    ),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(
        type='MultiBranchDataset',
        branches=dict(labeled=labeled, unlabeled=unlabeled, unlabeled_mix=unlabeled_mix),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=val_set,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='voc21')
test_evaluator = val_evaluator
inference_cfg = dict(crop_size=crop_size, stride=(214, 214))
