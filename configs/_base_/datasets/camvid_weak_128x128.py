# CamVid in-domain with image-level labels only: the train frames of camvid_128x128.py in
# 128x128 crops, each crop labelled with the classes it shows (masks dropped); test frames as
# there. CamVid frames show most of the 11 classes, so whole-frame labels would carry little
# localisation cue: crops stand for tagged images ('from_cropped_mask'; 'from_mask' labels the
# whole frame, as the reference does for VOC).
_base_ = ['./camvid_128x128.py']
weak_train = dict(
    type='CamVidDataset',
    data_root={{_base_.data_root}},
    split='train',
    resize={{_base_.img_size}},
    pipeline={{_base_.train_pipeline}},
    with_label=False,
    image_labels='from_cropped_mask',
)
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, weak=weak_train)))
