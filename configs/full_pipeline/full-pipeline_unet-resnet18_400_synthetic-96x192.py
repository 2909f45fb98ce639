# The full pipeline (source CE + feature alignment + SAC + ClassMix + MIC) on the
# built-in synthetic shift as ONE run, as the combined demo
# configs/sac/feature-adversarial-sac_unet-resnet18_400_synthetic-96x192.py: 200 ABN warm-up
# iterations (source CE + feature alignment, target-only BN statistics; validated at iteration
# 200), then SAC, ClassMix and MIC from the shared teacher initialised at iteration 200 (all
# three start with it because they read it).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/synthetic_shift.py',  # source/target branches, target val
    '../_base_/methods/full_pipeline.py',  # SourceCE + FeatureAdversarial + SAC + ClassMix + MIC
    '../_base_/schedules/adamw-adam_poly_400.py',  # AdamW student + Adam discriminators
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    # The SAC demo's teacher: per-step EMA (the run is short), from iteration 200.
    teacher=dict(momentum=0.99, interval=1, start_iter=200),
    teachers=dict(dacs=dict(start_iter=200)),  # DACS's EMA from 200, as the DACS demo
    labellers=dict(
        sac=dict(num_images=2),  # 2 target images x 4 views, as the SAC demo
        # No ego car or rectification border in 96x192 synthetic scenes: no margins.
        teacher_quality=dict(ignore_top=0, ignore_bottom=0),
    ),
    terms=dict(
        sac=dict(weight=1.0),  # as the SAC demo (5.0 is the ResNet-101 reference)
        # 16 px MIC blocks (a 6x12 grid) as configs/mic/mic_unet-resnet18_400_synthetic-96x192.py.
        mic=dict(block_size=16),
    ),
    # From scratch, BN statistics frozen at the ABN values go stale as the weights move: BN
    # keeps tracking target-only statistics throughout (as the SAC and DACS demos).
    bn_policy='target_only',
)
