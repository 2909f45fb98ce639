# SAC + image-level target labels (uda's combination; no reference implementation offers it):
# the SAC method (sac.py) plus
#   - tcam: single-stage CAM on the target branch (its image labels: img_labels), which adds
#     a classification signal and PAMR pseudo-masks on target images;
#   - SAC's pseudo-labels filtered by the image labels: classes an image's labels do not name
#     are ignored (labeller sac_weak = ImageLabelFilter around sac).
_base_ = ['./sac.py']
model = dict(
    labellers=dict(sac_weak=dict(type='ImageLabelFilter', labeller='sac')),
    terms=dict(
        sac=dict(labeller='sac_weak'),
        tcam=dict(
            type='SingleStageCAM',
            weight=1.0,
            branch='target',
            background=None,  # no background class in street scenes
            bg_logit=None,  # and no training-only background: every pixel has a class
            focal_power=3.0,
            focal_lambda=0.01,
            mask_weight=1.0,
            mask_start_iter=0,
            fg_ratio=0.6,
            bg_ratio=0.7,
            floor=0.2,
            pamr_iter=10,
            pamr_dilations=(1, 2, 4, 8, 12, 24),
            cam_stride=2,
        ),
    ),
)
