# The full pipeline: source cross-entropy + DANN-style feature alignment + SAC
# self-training + consistency regularisation (DACS ClassMix and MIC masked consistency), in one
# two-phase step (student, then the feature discriminators; needs a schedule with
# optim_wrapper.discriminators, e.g. sgd-adam_poly_40k_sac.py or adamw-adam_poly_400.py).
# Every term and number comes from its method's file, merged by name:
#   src, sac, feat, the SAC labeller, teacher and bn_policy: feature-adversarial_sac.py
#     (sac.py + feature_adversarial.py);
#   mix, the teacher_quality labeller and its teacher: dacs.py (DACS's variables class_mix,
#     teacher_quality, dacs_teacher);
#   mic: mic.py (MIC's masked consistency on the same teacher_quality labels, as dacs_mic.py).
# TWO momentum teachers, each with its method's settings: model.teacher is SAC's (momentum
# 0.99, update every 100 steps, no ramp), which SAC's view-averaged labels read (its class-wise
# thresholds and prior are tuned to it); model.teachers.dacs is DACS's (0.999 every step,
# ramped, batch-statistics BatchNorm), which the ClassMix / MIC quality labeller reads
# (source='teachers.dacs'). The quality labeller runs its teacher once per step and ClassMix
# and MIC share its labels (two teacher forwards per step: SAC's views, the target). A leaf
# that delays SAC's teacher (start_iter) delays DACS's to the same iteration.
_base_ = [
    './feature-adversarial_sac.py',  # model (src, feat, sac; teacher; SAC labeller)
    './dacs.py',  # variables teacher_quality, class_mix (and dacs_teacher, dacs_source)
    './mic.py',  # variable masked_consistency
]
model = dict(
    teachers=dict(dacs=_base_.dacs_teacher),
    labellers=dict(teacher_quality=dict(_base_.teacher_quality, source='teachers.dacs')),
    terms=dict(mix=_base_.class_mix, mic=_base_.masked_consistency),
)
