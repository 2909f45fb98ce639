# DACS: cross-domain mixed sampling (Tranheden et al., WACV 2021, arXiv:2007.08702) at the
# settings of its DAFormer re-implementation (lhoyer/DAFormer mmseg/models/uda/dacs.py,
# configs/_base_/uda/dacs.py with the alpha 0.999 and pseudo-label crop of
# configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py; DAFormer's
# plain DACS baseline has alpha 0.99 and no crop): source cross-entropy + ClassMix
# self-training against a momentum teacher's pseudo-labels weighted by their quality.
# The method's parts are variables, without `model`, so that the configs built on DACS compose
# them by name: the DACS leaves (configs/dacs/), MIC (dacs_mic.py) and the full pipeline
# (full_pipeline.py, whose `model` comes from SAC: two bases may not both define `model`):
#   model = dict(type='Adapter', teacher=dacs_teacher,
#                labellers=dict(teacher_quality=teacher_quality),
#                terms=dict(src=dacs_source, mix=class_mix))
# EMA teacher updated after every optimiser step with alpha_t = min(1 - 1/(t+1), 0.999)
# (DAFormer alpha 0.999; DACS 0.99), t = optimiser steps since its initialisation from the
# student, so it is the mean of the students S0..St while 1 - 1/(t+1) < alpha (ramp_offset
# 1; lhoyer/MIC seg/mmseg/models/uda/dacs.py:122-135, 316-321). Its BatchNorm normalises
# each target batch with that batch's statistics: the reference EMA model is never put in
# eval mode (dacs.py:376-384). bn_mode='eval' uses the EMA running statistics instead.
dacs_teacher = dict(
    momentum=0.999, interval=1, start_iter=0, ramp=True, ramp_offset=1, bn_mode='batch'
)
dacs_source = dict(type='SourceCE', weight=1.0, branch='source')
# Quality-weighted pseudo-labels: arg-max of the teacher, weight q = share of the batch's pixels
# with max softmax >= 0.968 (pseudo_threshold; one weight for the batch, as lhoyer/MIC
# seg/mmseg/models/uda/dacs.py:264-272; quality='image' for one per image). The margins
# (DAFormer: pseudo_weight_ignore_top 15, pseudo_weight_ignore_bottom 120 rows, for
# rectification artefacts and the ego car) are Cityscapes-sized (512x1024 frames); leaves on
# small crops set them to 0.
teacher_quality = dict(
    type='QualityLabeller',
    threshold=0.968,
    ignore_top=15,
    ignore_bottom=120,
    source='teacher',
    quality='batch',
)
# ClassMix: per image, the pixels of ceil(n/2) of the n classes of the source batch (ignore label
# included, a fresh draw per image: lhoyer/MIC seg/mmseg/models/utils/dacs_transforms.py:90-99;
# class_pool='image' draws from each image's own classes) pasted onto a target image;
# then DAFormer's strong augmentation (kornia 0.5 colour jitter s=0.2 with p 0.8, Gaussian blur
# with p 0.5, sigma U(0.15, 1.15), kernel odd(ceil(0.1 H)) x odd(ceil(0.1 W))); loss weight 1.
class_mix = dict(
    type='ClassMix',
    weight=1.0,
    source_branch='source',
    target_branch='target',
    labeller='teacher_quality',
    photometric=dict(preset='dacs_strong'),  # s 0.2 (DACS 0.25); batch coins, dacs.py:331-339
    class_pool='batch',
)
