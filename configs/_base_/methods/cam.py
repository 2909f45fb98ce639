# Single-stage CAM: segmentation from image-level labels alone (Araslanov & Roth, CVPR 2020,
# arXiv:2005.08104). Every number of the method, with the reference value
# (visinf/1-stage-wseg: core/config.py, configs/voc_resnet38.yaml, models/stage_net.py).
# The segmentation logits are the CAMs; the branch 'weak' carries image labels (img_labels).
# Two terms on the same maps: `cam` (classification) from the start, `cam_mask` (PAMR pseudo
# masks) from its start_iter. Both read background / bg_logit / cam_stride from `cam_maps`; a
# leaf changes them there and passes the variable to both terms:
#   cam_maps = dict(_base_.cam_maps, bg_logit=None, cam_stride=2)
#   model = dict(terms=dict(cam=cam_maps, cam_mask=dict(cam_maps, start_iter=42)))
cam_maps = dict(
    background=None,  # class id of a constant-logit background (VOC: 0), else appended
    bg_logit=1.0,  # constant background logit (torch.ones_like in SoftMaxAE.forward)
    cam_stride=1,  # masks/PAMR resolution (the reference's masks are at stride 4)
)
model = dict(
    type='Adapter',
    terms=dict(
        cam=dict(
            type='SingleStageCAM',
            weight=1.0,  # classification loss (MultiLabelSoftMarginLoss, NET.LOSS SoftMargin)
            branch='weak',
            focal_power=3.0,  # NET.FOCAL_P
            focal_lambda=0.01,  # NET.FOCAL_LAMBDA
            **cam_maps,
        ),
        cam_mask=dict(
            type='SingleStageCAMMask',
            start_iter=0,  # TRAIN.PRETRAIN = 5 epochs: leaves set it in iterations
            weight=1.0,  # NET.MASK_LOSS_BCE
            branch='weak',
            fg_ratio=0.6,  # pseudo_gtmask cutoff_top
            bg_ratio=0.7,  # background cutoff
            floor=0.2,  # cutoff_low
            pamr_iter=10,  # NET.PAMR_ITER
            pamr_dilations=(1, 2, 4, 8, 12, 24),  # NET.PAMR_KERNEL
            **cam_maps,
        ),
    ),
)
