# The 400-iteration AdamW poly schedule shortened to 200 iterations (the CPU budget of the
# CamVid benchmark); validation and checkpoint only at the end.
_base_ = ['./adamw_poly_400.py']
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=200, by_epoch=False)]
train_cfg = dict(max_iters=200, val_interval=200)
default_hooks = dict(checkpoint=dict(interval=200, max_keep_ckpts=1))
