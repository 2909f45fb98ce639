# The built-in synthetic shift (synthetic_shift.py) with image-level labels on the target
# training scenes (the classes each shows, masks still dropped).
_base_ = ['./synthetic_shift.py']
train_dataloader = dict(dataset=dict(branches=dict(target=dict(image_labels='from_mask'))))
