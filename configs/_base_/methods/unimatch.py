# UniMatch (Yang et al., CVPR 2023; LiheYoung/UniMatch unimatch.py): two strong views, each with
# its own CutMix box from another crop of the same unlabelled batch (the `unlabeled_mix` branch,
# which the semi dataset bases' sampler makes follow `unlabeled`: unimatch.py:121), plus the feature
# perturbation (Dropout2d(0.5) on the encoder features of the weak view's forward, decoded
# again). Targets: the student's predictions on the weak view (training-mode forward, detached)
# and, in the boxes, on the partner (eval mode), kept where confidence >= 0.95
# (configs/pascal.yaml conf_thresh; 0 for Cityscapes, configs/cityscapes.yaml). Each
# unlabelled CE is masked and divided by the non-padding pixels.
# Loss (L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2: uda sums the terms, so the /2 is split:
# sup weight 0.5; unl weight 0.5 x (0.25, 0.25) for the strong views and 0.5 x 0.5 for FP.
model = dict(
    type='Adapter',
    labellers=dict(
        weak=dict(type='ConfidenceLabeller', threshold=0.95, source='student_train'),
        partner=dict(type='ConfidenceLabeller', threshold=0.95, source='student'),
    ),
    terms=dict(
        sup=dict(type='SourceCE', weight=0.5, branch='labeled'),
        unl=dict(
            type='UniMatch',
            weight=0.5,  # the final /2
            strong_weights=(0.25, 0.25),  # L_s1, L_s2
            fp_weight=0.5,  # L_fp
            fp_p=0.5,  # nn.Dropout2d(0.5) (model/semseg/deeplabv3plus.py)
            fp_stages=None,  # every encoder stage the decoder reads (UniMatch: c1 and c4)
            labeller='weak',
            mix_labeller='partner',
            weak_branch='unlabeled',
            mix_branch='unlabeled_mix',
            cutmix_p=0.5,
            cutmix_area=(0.02, 0.4),
            cutmix_aspect=(0.3, 1 / 0.3),
            photometric=dict(preset='unimatch_strong'),  # UniMatch dataset/semi.py strong view
            # BatchNorm batches as unimatch.py:151 and deeplabv3plus.py:44-50: labelled + weak
            # images forwarded as one batch, clean + dropped features decoded as one batch.
            joint_branch='labeled',
            fp_decode='joint',
        ),
    ),
    bn_policy='train',
)
