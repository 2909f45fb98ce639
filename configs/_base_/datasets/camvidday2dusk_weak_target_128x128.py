# CamVid day -> dusk (camvidday2dusk_128x128.py) with image-level labels on the dusk training
# frames (the classes of each whole frame; pixel labels still never read for training).
_base_ = ['./camvidday2dusk_128x128.py']
train_dataloader = dict(dataset=dict(branches=dict(target=dict(image_labels='from_mask'))))
