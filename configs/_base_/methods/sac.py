# SAC: self-supervised augmentation consistency (Araslanov & Roth, CVPR 2021, arXiv:2105.00097).
# Source cross-entropy + self-training of the student on noised multi-view target batches
# against a momentum teacher's view-averaged, class-wise thresholded pseudo-labels.
# Every number of the method, with the reference value (visinf/da-sac:
# configs/deeplabv2_resnet101_train.yaml, models/sac.py, datasets/tf_target.py).
model = dict(
    type='Adapter',
    # Momentum teacher: copied from the student at `start_iter` (0 = a warm start from an ABN
    # checkpoint via `load_from`; >0 = that many warm-up iterations first), then
    # teacher = m * teacher + (1 - m) * student after every `interval`-th optimiser step.
    teacher=dict(momentum=0.99, interval=100, start_iter=0),  # NET_MOMENTUM, update interval
    labellers=dict(
        sac=dict(
            type='SACLabeller',
            num_images=None,  # NUM_GROUPS target images per batch (None = all)
            num_views=4,  # GROUP_SIZE
            scale_range=(1.0, 1.1),  # per-image rescale, then crop
            zoom_range=(0.5, 1.0),  # RND_ZOOM, views after the first
            flip_p=0.5,  # independent flip per view
            prior_momentum=0.99,  # STAT_MOMENTUM of the class prior
            threshold_lower=0.2,  # RUN_CONF_LOWER (0.1 for VGG-16)
            threshold_upper=0.75,  # RUN_CONF_UPPER
            threshold_beta=1e-3,  # THRESHOLD_BETA (also the prior's start value)
            coverage_tolerance=0.5,
        )
    ),  # a fused pixel needs this many (bilinear) views
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, branch='source'),
        # Starts with the teacher (its start_iter).
        sac=dict(
            type='SACSelfTraining',
            weight=5.0,  # LR_TARGET (ResNet-101)
            branch='target',
            labeller='sac',
            photometric=dict(preset='sac_noise'),  # RND_BLUR / RND_JITTER / RND_GREYSCALE
            focal_power=3.0,  # FOCAL_P, class weights (1 - prior)^3
            log_per_class=True,
        ),
    ),
    # The reference DeepLab-v2 trains with BatchNorm frozen in eval mode (running statistics
    # of the ABN warm start used and fixed). From-scratch leaves use 'target_only' instead.
    bn_policy='eval',
)
