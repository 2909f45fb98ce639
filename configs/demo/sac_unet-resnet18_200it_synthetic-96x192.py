# The SAC demo on the built-in synthetic shift, warm-started from the ABN demo's checkpoint
# (as in the reference: SAC starts from an ABN model):
#   python tools/train.py configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py \
#       --work-dir work_dirs/demo_abn
#   python tools/train.py configs/demo/sac_unet-resnet18_200it_synthetic-96x192.py \
#       --work-dir work_dirs/demo_sac --cfg-options load_from=work_dirs/demo_abn/iter_400.pth
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/unet_resnet18.py',        # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',    # source/target branches, target val
    '../_base_/methods/sac.py',                 # SourceCE + SACSelfTraining (+ idle ABN)
    '../_base_/schedules/adamw_poly_sac-demo.py',
]
sac = _base_.model.terms[1]
model = dict(
    segmentor=_base_.segmentor, data_preprocessor=_base_.data_preprocessor,
    # A 200-iteration run: a per-step EMA instead of the sparse 0.99 / 100 iterations, and
    # 2 of the 4 target images x 4 views per batch, so the demo fits minutes on a CPU.
    teacher=dict(momentum=0.99, interval=1),
    terms=[_base_.model.terms[0], dict(sac, weight=1.0, num_images=2), _base_.model.terms[2]])
custom_hooks = [*_base_.custom_hooks, _base_.teacher_hook]
