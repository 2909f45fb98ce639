# CamVid in-domain with image-level labels only: the train frames of camvid_128x128.py, each
# labelled with the classes of its whole (resized) mask, masks dropped; test frames as there.
# Labels describe the whole frame, a crop may miss some of its classes (as in the reference,
# which labels VOC images before cropping).
_base_ = ['./camvid_128x128.py']
weak_train = dict(
    type='CamVidDataset',
    data_root={{_base_.data_root}},
    split='train',
    resize={{_base_.img_size}},
    pipeline={{_base_.train_pipeline}},
    with_label=False,
    image_labels='from_mask',
)
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, weak=weak_train)))
