# Built-in synthetic scenes with image-level labels only: the target-style training scenes of
# synthetic_shift.py, each labelled with the classes of its (whole) mask, masks dropped; the
# same labelled target val/test scenes. The weak counterpart of the synthetic oracle.
_base_ = ['./synthetic_shift.py']
weak_train = dict(
    type='SyntheticDataset',
    style='target',
    num_samples=1000,
    seed=0,
    size={{_base_.scene_size}},
    pipeline={{_base_.train_pipeline}},
    with_label=False,
    image_labels='from_mask',
)
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, weak=weak_train)))
