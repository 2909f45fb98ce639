# DACS: cross-domain mixed sampling (Tranheden et al., WACV 2021, arXiv:2007.08702) at the
# settings of its DAFormer re-implementation (lhoyer/DAFormer mmseg/models/uda/dacs.py,
# configs/_base_/uda/dacs.py with the alpha 0.999 and pseudo-label crop of
# configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py; DAFormer's
# plain DACS baseline has alpha 0.99 and no crop): source cross-entropy + ClassMix
# self-training against a momentum teacher's pseudo-labels weighted by their quality. Every
# number of the method is here; the ClassMix term and the labeller are variables so that other
# methods built on DACS (MIC: dacs_mic.py) reuse them by name.
# Quality-weighted pseudo-labels: arg-max of the teacher, weight q = share of pixels with max
# softmax >= 0.968 per image (pseudo_threshold). The margins (DAFormer: pseudo_weight_ignore_top
# 15, pseudo_weight_ignore_bottom 120 rows, for rectification artefacts and the ego car) are
# Cityscapes-sized (512x1024 frames); leaves on small crops set them to 0.
teacher_quality = dict(
    type='QualityLabeller', threshold=0.968, ignore_top=15, ignore_bottom=120, source='teacher'
)
# ClassMix: per image, ceil(n/2) of the source image's n classes pasted onto a target image;
# then DAFormer's strong augmentation (kornia 0.5 colour jitter s=0.2 with p 0.8, Gaussian blur
# with p 0.5, sigma U(0.15, 1.15), kernel odd(ceil(0.1 H)) x odd(ceil(0.1 W))); loss weight 1.
class_mix = dict(
    type='ClassMix',
    weight=1.0,
    source_branch='source',
    target_branch='target',
    labeller='teacher_quality',
    strong=True,
    jitter=0.2,  # color_jitter_strength (DACS: 0.25)
    jitter_p=0.8,  # 1 - color_jitter_probability 0.2
    blur_p=0.5,
    blur_sigma=(0.15, 1.15),
)
model = dict(
    type='Adapter',
    # EMA teacher updated after every optimiser step with alpha_t = min(1 - 1/(t+1), 0.999)
    # (DAFormer alpha 0.999; DACS 0.99), initialised from the student at iteration 0.
    teacher=dict(momentum=0.999, interval=1, start_iter=0, ramp=True),
    labellers=dict(teacher_quality=teacher_quality),
    terms=dict(src=dict(type='SourceCE', weight=1.0, branch='source'), mix=class_mix),
)
# The teacher's initialisation and momentum update run in this hook (after the optimiser step).
custom_hooks = [dict(type='EMATeacherHook')]
