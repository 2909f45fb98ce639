# The full pipeline (source CE + feature alignment + SAC + ClassMix + MIC) on GTA5 ->
# Cityscapes with DeepLab-v2 ResNet-101, at the settings of
# configs/sac/feature-adversarial-sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py (SAC's
# SGD schedule and teacher, Adam 1e-4 discriminators) plus DACS's ClassMix and MIC's masked
# consistency at their reference numbers (quality threshold 0.968, margins 15 / 120 rows, 64 px
# blocks). Warm start from an ABN checkpoint, as SAC:
#   python tools/train.py \
#       configs/full_pipeline/full-pipeline_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py \
#       --cfg-options load_from=work_dirs/abn_deeplabv2-r101/iter_N.pth
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/full_pipeline.py',  # SourceCE + FeatureAdversarial + SAC + ClassMix + MIC
    '../_base_/schedules/sgd-adam_poly_40k_sac.py',  # SAC's SGD + discriminator Adam
]
model = dict(
    segmentor=_base_.segmentor,
    data_preprocessor=_base_.data_preprocessor,
    # Reference batches: 2 target images x 4 views beside the source batch.
    labellers=dict(sac=dict(num_images=2)),
)
