# Source-free weak/strong consistency (FixMatch-style, arXiv:2001.07685; numbers of
# configs/_base_/methods/fixmatch_uda.py): a mean teacher's confident predictions on the weak
# target view train the student on a strong view, from a trained source checkpoint
# (`load_from`), on unlabelled target images only (no source branch, no source data).
_base_ = ['./fixmatch_uda.py']
model = dict(
    # The teacher starts as the loaded model; EMA 0.999 per step (no ramp: it is trained).
    teacher=dict(ramp=False),
    terms=dict(_delete_=True, ws=_base_.model.terms.ws),  # the consistency term alone
)
