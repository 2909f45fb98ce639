# Weak/strong consistency (FixMatch-style, Sohn et al., NeurIPS 2020, arXiv:2001.07685) for UDA:
# source cross-entropy + cross-entropy of the student on a strong view of each target image
# against a mean teacher's confident (max softmax >= 0.95) predictions on the weak view.
# Loss masked by the confidence and divided by the non-padding pixels (LiheYoung/UniMatch
# unimatch.py); strong view made on the device with UniMatch's parameters (dataset/semi.py).
model = dict(
    type='Adapter',
    # Mean teacher: EMA of the student after every step with momentum
    # min(1 - 1/(t+1), 0.999), t = updates so far (ramp; DAFormer's `_update_ema` formula, but
    # DAFormer also counts the initial copy, ramp_offset=1: docs/fidelity.md).
    teacher=dict(momentum=0.999, interval=1, start_iter=0, ramp=True),
    labellers=dict(
        # FixMatch / UniMatch (Pascal) threshold; source='student' = UniMatch's model.eval().
        conf=dict(type='ConfidenceLabeller', threshold=0.95, source='teacher'),
    ),
    terms=dict(
        src=dict(type='SourceCE', weight=1.0, branch='source'),
        # Starts with the teacher (its start_iter).
        ws=dict(
            type='WeakStrongConsistency',
            weight=1.0,  # FixMatch lambda_u
            labeller='conf',
            weak_branch='target',
            strong_branch=None,  # None: strong view on the device (kornia), per image
            photometric=dict(preset='unimatch_strong'),  # UniMatch dataset/semi.py strong view
        ),
    ),
    bn_policy='train',
)
