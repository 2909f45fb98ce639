# Built-in synthetic target scenes only (uda/data/synthetic.py): adaptation without the source
# data. The target data of synthetic_shift.py: train = its unlabelled captured-look scenes as
# the one branch 'target' (no source dataset is built); val/test = its labelled target scenes
# of a disjoint seed, in a fixed order, 4 per batch: the stream of test-time adaptation (whose
# labels only score the predictions).
_base_ = ['./synthetic_shift.py']
train_dataloader = dict(dataset=dict(branches=dict(_delete_=True, target=_base_.target_train)))
# Test-time adaptation: BatchNorm statistics and one step per 4 images, in a fixed order.
val_dataloader = dict(batch_size=4)
test_dataloader = val_dataloader
