# Runtime shared by every config: registry scope, logging, TensorBoard, and the one
# default_hooks block. The schedules inherit this file and adjust fields of default_hooks to
# their budget (checkpoint interval, log interval): a leaf lists a schedule and not this file
# (two bases may not define one key), and adjusts fields, never the block
# (`default_hooks = dict(checkpoint=dict(interval=500))`). custom_hooks is left to the configs
# that need more hooks (pretraining's encoder export).
default_scope = 'uda'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # timeout: seconds a collective waits for the other ranks; a rank that died or hangs then
    # stops the others with an error naming it (uda/engine/rank_failure.py).
    dist_cfg=dict(backend='nccl', timeout=1800),
)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Written to a temporary file and renamed: a crash while saving never truncates one.
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Image panels (input | ground truth | prediction, and the terms' panels) for TensorBoard.
    visualization=dict(type='SegVisualizationHook', interval=100),
    rng_state=dict(type='RNGStateHook'),  # RNG states in checkpoints: exact --resume
    cpu_threads=dict(type='CPUThreadsHook', num_threads=1),  # same numbers on any CPU
    # The momentum teacher of any model that has one (model.teacher: initialised at its
    # start_iter, EMA-updated after the optimiser step); idle for models without one and under
    # TestTimeAdaptLoop, which updates the teacher itself. No method config lists it.
    teacher=dict(type='EMATeacherHook'),
)
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
# The console line: lr, time, total loss, one loss per term and at most three diagnostics
# (Adapter.console_keys); every scalar goes to TensorBoard.
log_processor = dict(type='ConsoleLogProcessor', by_epoch=False, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
# Reproducibility. A seeded CPU run is bit-identical from run to run (and across --resume: the
# default_hooks hold RNGStateHook, which saves the RNG states in checkpoints, and
# CPUThreadsHook, which pins 1 CPU thread because CPU results depend on the thread count).
# GPU runs are reproducible only up to atomics in some kernels and cuDNN's autotuner, unless
# deterministic=True (uda/engine/determinism.py): torch.use_deterministic_algorithms(True),
# cudnn.deterministic=True, cudnn.benchmark=False, CUBLAS_WORKSPACE_CONFIG=:4096:8. It is off
# by default: it is slower, and an op without a deterministic CUDA kernel (bilinear upsampling's
# backward, in most segmentors) then stops training with an error naming it;
# deterministic='warn' runs such ops with a warning instead. It changes nothing on the CPU.
randomness = dict(seed=0, deterministic=False)
# Mixed precision of every optimiser wrapper: None (fp32), 'bf16' or 'fp16' (uda.engine.amp;
# `tools/train.py CONFIG --amp bf16` or `--cfg-options amp=bf16`; docs/speed_and_scale.md).
amp = None
