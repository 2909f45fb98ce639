# Single-stage CAM on the built-in synthetic scenes: image labels only (the target-style
# training scenes, each labelled with the classes it shows), evaluated on labelled target
# scenes like the synthetic oracle (configs/demo/oracle_...), which has their pixel labels.
# 400 iterations, the first 83 classification-only (5 of the reference's 24 epochs).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_weak.py',  # branch 'weak': image labels from the masks
    '../_base_/methods/cam.py',  # SingleStageCAM
    '../_base_/schedules/adamw_poly_400.py',
]
# Every pixel of the scenes has a class: no background channel (bg_logit=None). Masks and
# PAMR at the crops' full resolution (48x64).
cam_maps = dict(_base_.cam_maps, bg_logit=None, cam_stride=1)
model = dict(
    # The stochastic gate mixes GCI-modulated stride-4 encoder features into the decoder output.
    segmentor=dict(
        _base_.segmentor,
        insertions=dict(gate=dict(type='ShallowGate', psi=0.3, in_index=2, channels=64)),
    ),
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
    terms=dict(cam=cam_maps, cam_mask=dict(cam_maps, start_iter=83)),
)
