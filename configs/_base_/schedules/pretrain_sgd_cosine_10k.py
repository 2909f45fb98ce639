# The pretraining schedule of pretrain_sgd_cosine_300.py at the in-domain budget of issue 21:
# 10k iterations x 32 images (~870 passes over the 367 CamVid frames; about 4 h of CPU time at
# one thread for MoCo v2, from the 300-iteration run's 7 min), cosine decay over the whole run,
# a checkpoint every 500 iterations so an interrupted run resumes
# (benchmarks/pretrained_encoder.py).
_base_ = ['./pretrain_sgd_cosine_300.py']
param_scheduler = [dict(type='CosineAnnealingLR', T_max=10000, eta_min=0.0, by_epoch=False)]
train_cfg = dict(max_iters=10000)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=500, max_keep_ckpts=1))
