# Semi-supervised Cityscapes at UniMatch's settings (LiheYoung/UniMatch configs/cityscapes.yaml,
# dataset/semi.py): full-resolution frames (2048x1024), random rescale 0.5-2.0, 801x801 crop
# (padded: image 0, mask 255 = ignore), horizontal flip; batch 2 per GPU (UniMatch: 4 GPUs,
# `torchrun --nproc_per_node 4 tools/train.py ... --launcher pytorch`). The labelled /
# unlabelled split is UniMatch's split files as they are: splits/cityscapes/1_16/{labeled,
# unlabeled}.txt (186 / 2789 of the 2975 train frames); their lines are matched to the frames
# of CityscapesDataset (labelIds mapped officially = UniMatch's labelTrainIds). The folder of
# UniMatch's splits/ is the UNIMATCH_SPLITS environment variable (default: splits).
# Val: the 500 val frames, sliding 801x801 windows with stride int(801 * 2 / 3) = 534
# (UniMatch supervised.py evaluate 'sliding_window').
data_root = '{{$CITYSCAPES_ROOT:data/cityscapes}}'
split_dir = '{{$UNIMATCH_SPLITS:splits}}/cityscapes/1_16'
num_classes = 19
crop_size = (801, 801)
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
cityscapes_train = dict(
    type='CityscapesDataset', data_root=data_root, split='train', pipeline=train_pipeline
)
labeled = dict(
    type='SemiSplit', dataset=cityscapes_train, part='labeled', split_dir=split_dir, seed_offset=0
)
unlabeled = dict(
    type='SemiSplit', dataset=cityscapes_train, part='unlabeled', split_dir=split_dir, seed_offset=1
)
unlabeled_mix = dict(unlabeled, seed_offset=2)
val_set = dict(type='CityscapesDataset', data_root=data_root, split='val')
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
val_evaluator = dict(type='IoUMetric', protocol='cityscapes19')
test_evaluator = val_evaluator
inference_cfg = dict(mode='slide', crop_size=crop_size, stride=(534, 534))
