# SAC at test time: SAC's labeller (multi-view teacher predictions, fused, with class-wise
# adaptive thresholds from a running class prior; visinf/da-sac models/sac.py) and its
# self-training term on the unlabelled stream, without the source branch. Self-training at test
# time with class-wise adaptive thresholds follows arXiv 2512.08569. The labeller and term
# numbers are SAC's (configs/_base_/methods/sac.py); the teacher follows the stream per step
# with CoTTA's EMA (SAC's 0.99 every 100 iterations would not move within a short stream).
model = dict(
    type='Adapter',
    teacher=dict(momentum=0.999, interval=1, start_iter=0),
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
            weight=1.0,  # alone (no source CE to balance)
            branch='target',
            labeller='sac',
            photometric=dict(preset='sac_noise'),  # RND_BLUR / RND_JITTER / RND_GREYSCALE
            focal_power=3.0,  # FOCAL_P
            log_per_class=False,
        )
    ),
)
# The test-time learning rate of CoTTA's segmentation code (Adam 6e-5 / 8), all parameters.
test_cfg = dict(
    type='TestTimeAdaptLoop',
    optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=7.5e-6, betas=(0.9, 0.999))
    ),
    reset='continual',
    steps=1,
    # SAC's DeepLab-v2 trains with BatchNorm in eval mode (source statistics; sac.py base).
    norm=dict(prior_strength=None),
    predict_with='teacher',
    collapse_guard=dict(warmup=4, momentum=0.8, min_class_entropy=0.5),
)
