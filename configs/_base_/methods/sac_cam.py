# SAC + image-level target labels (uda's combination; no reference implementation offers it):
# the SAC method (sac.py) plus
#   - tcam / tcam_mask: single-stage CAM (cam.py's two terms) on the target branch (its image
#     labels: img_labels), which adds a classification signal and PAMR pseudo-masks on target
#     images, both from the start;
#   - SAC's pseudo-labels filtered by the image labels: classes an image's labels do not name
#     are ignored (labeller sac_weak = ImageLabelFilter around sac).
_base_ = ['./sac.py']
# The maps both CAM terms read (cam.py's cam_maps).
tcam_maps = dict(
    background=None,  # no background class in street scenes
    bg_logit=None,  # and no training-only background: every pixel has a class
    cam_stride=2,
)
model = dict(
    labellers=dict(sac_weak=dict(type='ImageLabelFilter', labeller='sac')),
    terms=dict(
        sac=dict(labeller='sac_weak'),
        tcam=dict(
            type='SingleStageCAM',
            weight=1.0,
            branch='target',
            focal_power=3.0,
            focal_lambda=0.01,
            **tcam_maps,
        ),
        tcam_mask=dict(
            type='SingleStageCAMMask',
            start_iter=0,
            weight=1.0,
            branch='target',
            fg_ratio=0.6,
            bg_ratio=0.7,
            floor=0.2,
            pamr_iter=10,
            pamr_dilations=(1, 2, 4, 8, 12, 24),
            **tcam_maps,
        ),
    ),
)
