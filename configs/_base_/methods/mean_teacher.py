# Mean teacher for semi-supervised segmentation as UniMatch-V2 trains it (LiheYoung/UniMatch-V2
# unimatch_v2.py): an EMA teacher (momentum min(1 - 1/(t+1), 0.996) over parameters and buffers,
# updated after every step) labels the weak view (confidence >= 0.95, configs/pascal.yaml); the
# student learns on two strong views with CutMix; loss (L_x + (L_s1 + L_s2) / 2) / 2, i.e. sup 0.5
# and unl 0.5 x (0.5, 0.5). UniMatch-V2 takes the CutMix partner from the same batch flipped;
# here, as UniMatch, from another crop of the same unlabelled batch (the `unlabeled_mix` branch;
# docs/fidelity.md), labelled by the teacher too. Its complementary channel dropout (comp_drop,
# DINOv2 only) is not used. Reported network: the student (test_cfg.which).
model = dict(
    type='Adapter',
    teacher=dict(momentum=0.996, interval=1, start_iter=0, ramp=True),
    labellers=dict(teacher_conf=dict(type='ConfidenceLabeller', threshold=0.95, source='teacher')),
    terms=dict(
        sup=dict(type='SourceCE', weight=0.5, branch='labeled'),
        unl=dict(
            type='UniMatch',
            weight=0.5,  # the final /2
            strong_weights=(0.5, 0.5),  # (L_s1 + L_s2) / 2
            fp_weight=0.0,
            labeller='teacher_conf',
            mix_labeller='teacher_conf',
            weak_branch='unlabeled',
            mix_branch='unlabeled_mix',
            cutmix_p=0.5,
            cutmix_area=(0.02, 0.4),
            cutmix_aspect=(0.3, 1 / 0.3),
            photometric=dict(preset='unimatch_strong'),  # UniMatch dataset/semi.py strong view
        ),
    ),
    bn_policy='train',
)
