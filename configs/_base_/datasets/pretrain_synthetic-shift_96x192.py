# Unlabelled images of the built-in synthetic shift (uda/data/synthetic.py) for self-supervised
# pretraining (tools/pretrain.py): the 1000 source (rendered-look) and 1000 target
# (captured-look) training scenes of configs/_base_/datasets/synthetic_shift.py (same seeds),
# labels never rendered into the batch; the target val scenes (seed 1000) are not used.
# Each draw gives two views of one 96x192 scene (MoCo v2 / DenseCL crops, facebookresearch/moco
# main_moco.py aug_plus): RandomResizedCrop to 96x96 (the scene height) with scale (0.2, 1) and
# aspect ratios (3/4, 4/3), then a horizontal flip with p 0.5, drawn independently per view.
scene_size = (96, 192)
crop_size = (96, 96)
pretrain_images = dict(
    type='UnlabelledImages',
    datasets=[
        dict(type='SyntheticDataset', style='source', num_samples=1000, seed=0, size=scene_size),
        dict(type='SyntheticDataset', style='target', num_samples=1000, seed=0, size=scene_size),
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
