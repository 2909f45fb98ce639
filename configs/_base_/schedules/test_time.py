# Test-time adaptation: no training loop (the optimiser and the stream's settings are the
# method base's test_cfg, TestTimeAdaptLoop); the hooks of a test run. One CPU thread, as every
# schedule: CPU results and the reported ms per image depend on the thread count.
val_cfg = dict(type='ValLoop')  # the Runner wants a validation loop beside its dataloader
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    cpu_threads=dict(type='CPUThreadsHook', num_threads=1),
    rng_state=dict(type='RNGStateHook'),  # as every schedule (RNG states with checkpoints)
    # No training, no checkpoint (tools/adapt.py writes the adapted one); the safe hook in
    # place of mmengine's default.
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=-1),
)
