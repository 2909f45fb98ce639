# Source-free SAC: SAC's self-training (configs/_base_/methods/sac.py numbers, visinf/da-sac)
# on unlabelled target images only, from a trained source checkpoint (`load_from`); no source
# branch, no source data. The teacher starts as the loaded model (start_iter 0) and follows the
# student per step (the short-run setting of the CamVid SAC leaf).
model = dict(
    type='Adapter',
    teacher=dict(momentum=0.99, interval=1, start_iter=0),
    labellers=dict(
        sac=dict(
            type='SACLabeller',
            num_images=None,
            num_views=4,  # GROUP_SIZE
            scale_range=(1.0, 1.1),
            zoom_range=(0.5, 1.0),  # RND_ZOOM
            flip_p=0.5,
            prior_momentum=0.99,  # STAT_MOMENTUM
            threshold_lower=0.2,  # RUN_CONF_LOWER
            threshold_upper=0.75,  # RUN_CONF_UPPER
            threshold_beta=1e-3,  # THRESHOLD_BETA
            coverage_tolerance=0.5,
        )
    ),
    terms=dict(
        sac=dict(
            type='SACSelfTraining',
            weight=1.0,  # alone: no source cross-entropy to balance
            branch='target',
            labeller='sac',
            photometric=dict(preset='sac_noise'),  # RND_BLUR / RND_JITTER / RND_GREYSCALE
            focal_power=3.0,  # FOCAL_P
            log_per_class=True,
        )
    ),
    # Only target batches: training-mode BatchNorm follows the target statistics.
    bn_policy='train',
)
custom_hooks = [dict(type='EMATeacherHook')]
