# Semi-supervised CamVid: all 367 train frames (the four sequences, day and dusk) form one
# domain; 1/8 of them (ceil(367 / 8) = 46) keep their labels, drawn class-balanced with a fixed
# split seed so every seed of a benchmark trains on the same labelled frames and all 11 classes
# are labelled; the rest (321) are unlabelled. Scored on the 233 test frames (11 classes,
# void = ignore). Frames (360x480) are resized to 180x240 on load, as the CamVid day -> dusk
# benchmark (camvidday2dusk_128x128.py), so a 2-core CPU can run it.
# Weak view as UniMatch (dataset/semi.py, dataset/transform.py): random rescale 0.5-2.0, a
# 128x128 crop (padded where the rescaled frame is smaller: image 0, mask 255 = ignore, so the
# unlabelled losses leave padding out), horizontal flip. The labelled branch uses the same.
# Branches: labeled / unlabeled / unlabeled_mix (the CutMix partners: the unlabelled images again,
# see `follow` below); seed_offset gives each branch its own augmentation RNG.
# The data root is the CAMVID_ROOT environment variable (default: data/camvid).
data_root = '{{$CAMVID_ROOT:data/camvid}}'
num_classes = 11
img_size = (180, 240)
crop_size = (128, 128)
train_pipeline = [
    dict(type='RandomScale', scale_limit=(-0.5, 1.0), p=1.0),  # x U(0.5, 2.0)
    dict(
        type='RandomCrop',
        height=crop_size[0],
        width=crop_size[1],
        pad_if_needed=True,
        pad_position='top_left',  # UniMatch pads right / bottom, then crops
        fill=0,
        fill_mask=255,
    ),
    dict(type='HorizontalFlip', p=0.5),
]
camvid_train = dict(
    type='CamVidDataset',
    data_root=data_root,
    split='train',
    resize=img_size,
    pipeline=train_pipeline,
)
# The split, shared by the three branches (they must agree to be disjoint).
split = dict(fraction=1 / 8, seed=0, class_balanced=True)
labeled = dict(type='SemiSplit', dataset=camvid_train, part='labeled', seed_offset=0, **split)
unlabeled = dict(type='SemiSplit', dataset=camvid_train, part='unlabeled', seed_offset=1, **split)
unlabeled_mix = dict(unlabeled, seed_offset=2)
test_set = dict(type='CamVidDataset', data_root=data_root, split='test', resize=img_size)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
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
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=test_set,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='camvid11')
test_evaluator = val_evaluator
inference_cfg = dict(crop_size=crop_size, stride=(85, 85))
