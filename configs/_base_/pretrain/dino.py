# DINO self-distillation (uda/pretrain/dino.py): student = the segmentor's encoder + DINO head,
# teacher = its momentum copy with a cosine momentum schedule, lightly's DINOLoss.
# Reference values (facebookresearch/dino main_dino.py): out_dim 65536, head 2048 hidden /
# 256 bottleneck, norm_last_layer True, no BN in the head, student temperature 0.1, teacher
# temperature 0.04 (warm-up from 0.04, i.e. none, by default), centre momentum 0.9, teacher
# momentum 0.996 -> 1 (cosine over the run), last layer frozen for 1 epoch, 2 global + 8 local
# crops. Small-data defaults here:
#   out_dim 4096: 65536 prototypes would be a 16.8 M-parameter last layer (more than the
#     ResNet-18) for a few hundred images;
#   momentum 0.99 -> 1: 0.996 has a 250-step time constant, most of a 300-step run;
#   freeze_last_layer_iters 20: about one epoch of the 367 CamVid frames at batch 16.
model = dict(
    type='DINO',
    out_dim=4096,
    hidden_dim=2048,
    bottleneck_dim=256,
    use_bn_in_head=False,
    norm_last_layer=True,
    student_temp=0.1,
    teacher_temp=0.04,
    warmup_teacher_temp=0.04,
    warmup_teacher_temp_iters=0,
    center_momentum=0.9,
    momentum=0.99,
    momentum_end=1.0,
    momentum_iters=None,  # the whole run (train_cfg.max_iters)
    freeze_last_layer_iters=20,
    global_views=('images.global1', 'images.global2'),
    local_views=('images.local1', 'images.local2'),
    # DataAugmentationDINO: solarisation p 0.2 on the second global view only.
    solarize={'images.global2': 0.2},
    # DataAugmentationDINO photometric parts, on the device per image: colour jitter
    # (0.4, 0.4, 0.2, 0.1) p 0.8, grey p 0.2, then Gaussian blur sigma U(0.1, 2) with p 1.0
    # (global 1), 0.1 (global 2), 0.5 (local views); kernel 10% of the crop side.
    photometric={
        'images.global1': dict(
            jitter=(0.4, 0.4, 0.2, 0.1),
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=1.0,
            blur_kernel='relative',
        ),
        'images.global2': dict(
            jitter=(0.4, 0.4, 0.2, 0.1),
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=0.1,
            blur_kernel='relative',
        ),
        'images.local1': dict(
            jitter=(0.4, 0.4, 0.2, 0.1),
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=0.5,
            blur_kernel='relative',
        ),
        'images.local2': dict(
            jitter=(0.4, 0.4, 0.2, 0.1),
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=0.5,
            blur_kernel='relative',
        ),
    },
)
# Multi-crop views (main_dino.py --global_crops_scale 0.4 1, --local_crops_scale 0.05 0.4,
# 96 px local crops for 224 px global ones), as fractions of the dataset's crop size: leaves
# build the dataset's `views` from these (2 local crops instead of 8 for the CPU budget).
global_crops_scale = (0.4, 1.0)
local_crops_scale = (0.05, 0.4)
custom_hooks = [dict(type='EncoderExportHook')]  # the teacher: default_hooks.teacher
