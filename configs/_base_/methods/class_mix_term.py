# DACS's ClassMix term and its quality labeller alone, as variables and without `model`, so
# that configs which already inherit another method's `model` (the mission pipeline on top of
# SAC: mission.py) can add them by name: two bases may not both define `model`. dacs.py builds
# DACS from these; the numbers are documented there.
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
