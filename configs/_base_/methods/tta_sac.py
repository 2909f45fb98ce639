# SAC at test time: SAC's labeller (multi-view teacher predictions, fused, with class-wise
# adaptive thresholds from a running class prior; visinf/da-sac models/sac.py) and its
# self-training term on the unlabelled stream, without the source branch. Self-training at test
# time with class-wise adaptive thresholds follows arXiv 2512.08569. The labeller and term
# numbers are SAC's (sac.py, through source-free_sac.py: the term alone, weight 1); the teacher
# follows the stream per step with CoTTA's EMA (SAC's 0.99 every 100 iterations would not move
# within a short stream).
_base_ = ['./source-free_sac.py']
model = dict(teacher=dict(momentum=0.999), terms=dict(sac=dict(log_per_class=False)))
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
