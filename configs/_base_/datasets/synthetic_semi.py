# Semi-supervised on the built-in synthetic scenes (uda/data/synthetic.py), one domain (the
# captured-look 'target' style): 1000 training scenes of which 1/16 (63) keep their labels
# (seeded random split), val = 100 labelled scenes from a disjoint seed. 9 classes
# (protocol synthetic9 over Cityscapes trainIds). Weak view as UniMatch (dataset/semi.py):
# rescale 0.5-2.0, 96x96 crop (padding: mask 255), horizontal flip.
scene_size = (96, 192)
crop_size = (96, 96)
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
scenes = dict(
    type='SyntheticDataset',
    style='target',
    num_samples=1000,
    seed=0,
    size=scene_size,
    pipeline=train_pipeline,
)
split = dict(fraction=1 / 16, seed=0)
labeled = dict(type='SemiSplit', dataset=scenes, part='labeled', seed_offset=0, **split)
unlabeled = dict(type='SemiSplit', dataset=scenes, part='unlabeled', seed_offset=1, **split)
unlabeled_mix = dict(unlabeled, seed_offset=2)
val_set = dict(type='SyntheticDataset', style='target', num_samples=100, seed=1000, size=scene_size)
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
    dataset=val_set,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', protocol='cityscapes19', eval_protocol='synthetic9')
test_evaluator = val_evaluator
inference_cfg = dict(
    mode='whole', crop_size=(96, 96), stride=(64, 64), scales=(0.75, 1.0, 1.25), flip=True
)
