# The 400-iteration AdamW poly schedule stretched to 3k iterations: the converged CamVid budget
# (benchmarks/converged.py), validation every 250 iterations for the learning curve, a
# checkpoint at every validation (only the newest kept: the cache and --resume need no more).
_base_ = ['./adamw_poly_400.py']
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=3000, by_epoch=False)]
train_cfg = dict(max_iters=3000, val_interval=250)
default_hooks = dict(checkpoint=dict(interval=250, max_keep_ckpts=1))
