# FixMatch for semi-supervised segmentation as LiheYoung/UniMatch fixmatch.py implements it: one
# strong view of each unlabelled image (ColorJitter(0.5, 0.5, 0.5, 0.25) p 0.8, greyscale p 0.2,
# blur sigma U(0.1, 2) p 0.5; dataset/semi.py) with a CutMix box (p 0.5, area U(0.02, 0.4), aspect
# U(0.3, 1/0.3); dataset/transform.py) pasted from another crop of the same unlabelled batch
# (`unlabeled_mix` follows `unlabeled` in the semi dataset bases' sampler, as fixmatch.py:120
# zip(trainloader_l, trainloader_u, trainloader_u)); targets = the student's confident (>= 0.95,
# configs/pascal.yaml conf_thresh) predictions on the weak view (training-mode forward, detached)
# and, inside the box, on the partner (eval mode). Loss (L_x + L_s) / 2: the /2 is split over the
# terms, so sup 0.5 and unl weight 0.5 x strong_weights (1.0,). Term: uda/methods/unimatch.py.
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
            weight=0.5,  # the final /2 of (L_x + L_s) / 2
            strong_weights=(1.0,),  # one strong view
            fp_weight=0.0,  # no feature perturbation in FixMatch
            labeller='weak',
            mix_labeller='partner',
            weak_branch='unlabeled',
            mix_branch='unlabeled_mix',
            cutmix_p=0.5,
            cutmix_area=(0.02, 0.4),
            cutmix_aspect=(0.3, 1 / 0.3),
            photometric=dict(preset='unimatch_strong'),  # UniMatch dataset/semi.py strong view
            # Labelled + weak images forwarded as one batch (fixmatch.py:146).
            joint_branch='labeled',
        ),
    ),
    bn_policy='train',
)
