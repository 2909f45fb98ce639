# Source-free SAC: SAC's self-training (every number of sac.py, visinf/da-sac) on unlabelled
# target images only, from a trained source checkpoint (`load_from`); no source branch, no
# source data. The teacher starts as the loaded model (start_iter 0) and follows the student
# per step (the short-run setting of the CamVid SAC leaf).
_base_ = ['./sac.py']
model = dict(
    teacher=dict(interval=1),  # sac.py's momentum 0.99, every step
    # SAC's term alone (no source cross-entropy to balance: weight 1), SAC's labeller.
    terms=dict(_delete_=True, sac=dict(_base_.model.terms.sac, weight=1.0)),
    # Only target batches: training-mode BatchNorm follows the target statistics.
    bn_policy='train',
)
