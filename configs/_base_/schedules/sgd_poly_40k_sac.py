# The SAC reference optimiser (visinf/da-sac configs/deeplabv2_resnet101_train.yaml): SGD,
# lr 2.5e-4, momentum 0.9, weight decay 5e-4, polynomial decay -- the same optimiser as
# ADVENT's schedule, which this inherits. The iteration budget (40k, validation and checkpoint
# every 2k) is ours.
_base_ = ['./sgd_poly_120k.py']
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False)]
train_cfg = dict(max_iters=40000)
