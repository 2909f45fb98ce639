# DACS on the built-in synthetic shift as ONE run, like the SAC demo: 200 ABN warm-up iterations
# (source CE, target-only BN statistics; validated at iteration 200: the ABN starting point),
# then ClassMix self-training from a teacher initialised at iteration 200 (ClassMix starts with
# the teacher because its labeller reads it). `python tools/train.py` on this file prints the
# final (adapted) target mIoU; the log shows the ABN one at iteration 200.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/dacs.py',  # DACS's teacher, quality labeller, ClassMix
    '../_base_/schedules/adamw_poly_400.py',  # validation every 200 iterations
]
model = dict(
    type='Adapter',
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    # DACS's EMA (alpha_t = min(1 - 1/(t+1), 0.999)) from 200.
    teacher=dict(_base_.dacs_teacher, start_iter=200),
    # No ego car or rectification border in 96x192 synthetic scenes: no pseudo-label margins.
    labellers=dict(teacher_quality=dict(_base_.teacher_quality, ignore_top=0, ignore_bottom=0)),
    terms=dict(src=_base_.dacs_source, mix=_base_.class_mix),
    # From scratch, BN statistics frozen at the ABN values go stale as the weights move; BN keeps
    # tracking target-only statistics throughout (as the SAC demo).
    bn_policy='target_only',
)
