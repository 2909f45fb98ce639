# Source-free weak-strong on the built-in shift: adapt the source-only demo model with unlabelled
# target scenes only (no source data is read). Train the source model first:
#   python tools/train.py configs/demo/source-only_unet-resnet18_400_synthetic-96x192.py
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_target-only.py',  # target branch only
    '../_base_/methods/source-free_weak-strong.py',
    '../_base_/schedules/adamw_poly_200_source-free.py',
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    test_cfg=_base_.inference_cfg,
)
# The trained source model (tools/train.py's default work dir of the source-only demo).
load_from = 'work_dirs/source-only_unet-resnet18_400_synthetic-96x192/iter_400.pth'
