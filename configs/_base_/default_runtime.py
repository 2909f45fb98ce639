# Runtime shared by every config: registry scope, logging, TensorBoard. The image-panel hook
# (SegVisualizationHook) is default_hooks['visualization'] of each root schedule, since the
# schedules own default_hooks and two bases may not define one key; custom_hooks is left to
# the method bases (e.g. the EMA teacher hook).
default_scope = 'uda'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
