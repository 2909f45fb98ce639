# Source-free weak/strong consistency (FixMatch-style, arXiv:2001.07685; numbers of
# configs/_base_/methods/fixmatch_uda.py): a mean teacher's confident predictions on the weak
# target view train the student on a strong view, from a trained source checkpoint
# (`load_from`), on unlabelled target images only (no source branch, no source data).
model = dict(
    type='Adapter',
    # The teacher starts as the loaded model; EMA 0.999 per step (no ramp: it is trained).
    teacher=dict(momentum=0.999, interval=1, start_iter=0, ramp=False),
    labellers=dict(conf=dict(type='ConfidenceLabeller', threshold=0.95, source='teacher')),
    terms=dict(
        ws=dict(
            type='WeakStrongConsistency',
            weight=1.0,  # FixMatch lambda_u
            labeller='conf',
            weak_branch='target',
            strong_branch=None,  # strong view on the device (kornia), per image
            jitter=(0.5, 0.5, 0.5, 0.25),  # UniMatch ColorJitter(0.5, 0.5, 0.5, 0.25)
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=0.5,
            blur_kernel=13,
            prefix='tgt',
        ),
    ),
    bn_policy='train',
)
custom_hooks = [dict(type='EMATeacherHook')]
