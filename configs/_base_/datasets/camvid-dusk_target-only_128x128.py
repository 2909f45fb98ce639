# CamVid dusk frames only (docs/datasets.md): adaptation of a day-trained model without the day
# data. The dusk data of camvidday2dusk_128x128.py: train = its unlabelled train 0001TP (62
# dusk frames, labels never read) as the one branch 'target' (no source dataset is built);
# val/test = its labelled test 0001TP (62 dusk frames) in their order, 4 per batch: the
# test-time stream.
_base_ = ['./camvidday2dusk_128x128.py']
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, target=_base_.target_train)))
# Test-time adaptation: BatchNorm statistics and one step per 4 images, in a fixed order.
val_dataloader = dict(batch_size=4)
test_dataloader = val_dataloader
