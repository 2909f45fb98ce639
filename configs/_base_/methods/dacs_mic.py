# MIC on DACS: source cross-entropy + ClassMix self-training (dacs.py: teacher, quality
# labeller, numbers) + masked image consistency (mic.py), both reading one set of teacher
# pseudo-labels per step. MIC's reference host is HRDA (multi-resolution DAFormer); uda has no
# HRDA, so this is MIC's DAFormer-style variant (lhoyer/MIC reports it on DAFormer as well).
_base_ = ['./dacs.py', './mic.py']
model = dict(
    type='Adapter',
    teacher=_base_.dacs_teacher,
    labellers=dict(teacher_quality=_base_.teacher_quality),
    terms=dict(src=_base_.dacs_source, mix=_base_.class_mix, mic=_base_.masked_consistency),
)
