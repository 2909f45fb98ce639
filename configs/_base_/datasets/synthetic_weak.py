# Built-in synthetic scenes with image-level labels only: target-style training scenes, cut
# into random 48x64 crops, each crop labelled with the classes it shows (masks dropped);
# evaluated on the labelled target val/test scenes of synthetic_shift.py. Every scene shows
# nearly every class (9 classes in 100 % of scenes), so whole-scene labels would carry no
# localisation cue: crops stand for tagged images ('from_cropped_mask'). Batch 8 crops.
_base_ = ['./synthetic_shift.py']
weak_train = dict(
    type='SyntheticDataset',
    style='target',
    num_samples=1000,
    seed=0,
    size={{_base_.scene_size}},
    pipeline=[dict(type='RandomCrop', height=48, width=64), dict(type='HorizontalFlip', p=0.5)],
    with_label=False,
    image_labels='from_cropped_mask',
)
train_dataloader = dict(batch_size=8, dataset=dict(branches=dict(_delete_=True, weak=weak_train)))
