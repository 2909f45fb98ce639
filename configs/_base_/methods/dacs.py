# DACS: cross-domain mixed sampling (Tranheden et al., WACV 2021, arXiv:2007.08702) at the
# settings of its DAFormer re-implementation (lhoyer/DAFormer mmseg/models/uda/dacs.py,
# configs/_base_/uda/dacs.py with the alpha 0.999 and pseudo-label crop of
# configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py; DAFormer's
# plain DACS baseline has alpha 0.99 and no crop): source cross-entropy + ClassMix
# self-training against a momentum teacher's pseudo-labels weighted by their quality. The
# quality labeller (teacher_quality: threshold 0.968, margins 15 / 120 rows) and the ClassMix
# term (class_mix) with their numbers are variables of class_mix_term.py, so that methods
# built on DACS reuse them by name: MIC (dacs_mic.py, which inherits this file) and the
# full pipeline (full_pipeline.py, which cannot: it inherits SAC's `model`).
_base_ = ['./class_mix_term.py']
model = dict(
    type='Adapter',
    # EMA teacher updated after every optimiser step with alpha_t = min(1 - 1/(t+1), 0.999)
    # (DAFormer alpha 0.999; DACS 0.99), t = optimiser steps since its initialisation from the
    # student, so it is the mean of the students S0..St while 1 - 1/(t+1) < alpha (ramp_offset
    # 1; lhoyer/MIC seg/mmseg/models/uda/dacs.py:122-135, 316-321). Its BatchNorm normalises
    # each target batch with that batch's statistics: the reference EMA model is never put in
    # eval mode (dacs.py:376-384). bn_mode='eval' uses the EMA running statistics instead.
    teacher=dict(
        momentum=0.999, interval=1, start_iter=0, ramp=True, ramp_offset=1, bn_mode='batch'
    ),
    labellers=dict(teacher_quality=_base_.teacher_quality),
    terms=dict(src=dict(type='SourceCE', weight=1.0, branch='source'), mix=_base_.class_mix),
)
# The teacher's initialisation and momentum update run in this hook (after the optimiser step).
custom_hooks = [dict(type='EMATeacherHook')]
