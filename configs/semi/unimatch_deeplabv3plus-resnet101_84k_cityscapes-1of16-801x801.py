# UniMatch: two strong CutMix views + feature perturbation (UniMatch unimatch.py); Cityscapes,
# UniMatch split 1/16 (186 labelled), at UniMatch's settings (LiheYoung/UniMatch
# configs/cityscapes.yaml). Reported (R101, ImageNet init): UniMatch 76.6, supervised only 66.3
# (README / paper Table). The labelled loss is UniMatch's OHEM (thresh 0.7, min_kept 200000;
# util/ohem.py). Difference: the last checkpoint, not the best epoch. Other splits:
# split_dir=.../cityscapes/1_8 (and the iterations in the schedule base).
_base_ = [
    '../_base_/models/deeplabv3plus-unimatch_resnet101.py',  # UniMatch's network + init
    '../_base_/datasets/cityscapes_semi_801x801.py',
    '../_base_/methods/unimatch.py',
    '../_base_/schedules/sgd_poly_84k_semi-cityscapes.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,  # sliding 801x801 windows, stride 534
    # configs/cityscapes.yaml criterion: OHEM, thresh 0.7, min_kept 200000.
    terms=dict(sup=dict(ohem_thresh=0.7, ohem_min_kept=200000)),
    # conf_thresh 0 on Cityscapes (configs/cityscapes.yaml): every pixel is a target.
    labellers=dict(weak=dict(threshold=0.0), partner=dict(threshold=0.0)),
)
