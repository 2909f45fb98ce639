# MIC (on DACS) on the built-in synthetic shift as ONE run: the DACS demo (200 ABN warm-up
# iterations, then ClassMix from a teacher initialised at iteration 200) plus MIC's masked
# consistency on the same teacher pseudo-labels, starting with the teacher too.
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/dacs_mic.py',  # SourceCE + ClassMix + MaskedConsistency + teacher hook
    '../_base_/schedules/adamw_poly_400.py',  # validation every 200 iterations
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    teacher=dict(start_iter=200),
    # No ego car or rectification border in 96x192 synthetic scenes: no pseudo-label margins.
    labellers=dict(teacher_quality=dict(ignore_top=0, ignore_bottom=0)),
    # MIC's 64 px blocks on a 512 px crop are 1/8 of its side; 64 px blocks on 96x192 scenes
    # would give a 2x3 grid (12 % of the images fully masked), 16 px keeps a 6x12 grid.
    terms=dict(mic=dict(block_size=16)),
    bn_policy='target_only',  # as the DACS demo
)
