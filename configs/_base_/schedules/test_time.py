# Test-time adaptation: no training loop (the optimiser and the stream's settings are the
# method base's test_cfg, TestTimeAdaptLoop); the hooks of a test run. One CPU thread, as every
# schedule: CPU results and the reported ms per image depend on the thread count.
_base_ = ['../default_runtime.py']  # registry scope, logging, the default_hooks block
val_cfg = dict(type='ValLoop')  # the Runner wants a validation loop beside its dataloader
# No training, no checkpoint (tools/adapt.py writes the adapted one), no image panels
# (interval 0: never).
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=-1),
    visualization=dict(interval=0, draw_val=False),
)
