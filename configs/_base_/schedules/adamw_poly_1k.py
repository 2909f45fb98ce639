# The 400-iteration AdamW poly schedule stretched to 1k iterations (short real-data runs),
# validation and checkpoint every 250.
_base_ = ['./adamw_poly_400.py']
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=1000, by_epoch=False)]
train_cfg = dict(max_iters=1000, val_interval=250)
default_hooks = dict(checkpoint=dict(interval=250))
