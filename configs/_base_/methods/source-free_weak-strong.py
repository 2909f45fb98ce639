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
            photometric=dict(preset='unimatch_strong'),  # UniMatch dataset/semi.py strong view
        ),
    ),
    bn_policy='train',
)
custom_hooks = [dict(type='EMATeacherHook')]
