# The full pipeline: source cross-entropy + DANN-style feature alignment + SAC
# self-training + consistency regularisation (DACS ClassMix and MIC masked consistency), in one
# two-phase step (student, then the feature discriminators; needs a schedule with
# optim_wrapper.discriminators, e.g. sgd-adam_poly_40k_sac.py or adamw-adam_poly_400.py).
# Every term and number comes from its method's file, merged by name:
#   src, sac, feat, the SAC labeller, teacher and bn_policy: feature-adversarial_sac.py
#     (sac.py + feature_adversarial.py);
#   mix and the teacher_quality labeller: dacs.py (DACS's variables class_mix, teacher_quality);
#   mic: mic.py (MIC's masked consistency on the same teacher_quality labels, as dacs_mic.py).
# ONE momentum teacher, with SAC's settings (momentum 0.99, update every 100 steps, no ramp),
# not DACS's (0.999 every step, ramped): the Adapter holds a single MomentumTeacher
# (model.teacher), which SAC's view-averaged labels and the ClassMix / MIC quality labels both
# read, so only one set of settings can hold; SAC's are kept because its class-wise thresholds
# and prior are tuned to that teacher. The quality labeller runs the teacher once per step and
# ClassMix and MIC share its labels (two teacher forwards per step: SAC's views, the target).
_base_ = [
    './feature-adversarial_sac.py',  # model (src, feat, sac; teacher; SAC labeller)
    './dacs.py',  # variables teacher_quality, class_mix (and dacs_teacher, dacs_source)
    './mic.py',  # variable masked_consistency
]
model = dict(
    labellers=dict(teacher_quality=_base_.teacher_quality),
    terms=dict(mix=_base_.class_mix, mic=_base_.masked_consistency),
)
