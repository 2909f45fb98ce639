# DACS on GTA5 -> Cityscapes with DeepLab-v2 ResNet-101 at DAFormer's settings for it
# (lhoyer/DAFormer configs/_base_/schedules/adamw.py, poly10warm.py, and the lr / head x10 of
# configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py: AdamW 6e-5, head
# lr x10, linear warm-up 1500 iterations then poly 1.0, 40k iterations, batch 2 (source + target),
# 512x512 crops; reported 52.1 mIoU in the DACS paper, with SGD 2.5e-4 over 250k iterations). From
# DACS's COCO DeepLab init (init_dacs of the model base; DAFormer's DeepLab-v2 runs start from
# mmcv's deep-stem resnet101_v1c, which this torchvision-style ResNet cannot take); the file is
# found or downloaded as docs/weights.md says:
#   python tools/train.py configs/dacs/dacs_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/dacs.py',  # DACS's teacher, quality labeller, ClassMix
    '../_base_/schedules/adamw_poly_40k_warmup.py',  # DAFormer's AdamW + warm-up poly, 40k
]
model = dict(
    type='Adapter',
    teacher=_base_.dacs_teacher,
    labellers=dict(teacher_quality=_base_.teacher_quality),
    terms=dict(src=_base_.dacs_source, mix=_base_.class_mix),
    segmentor=dict(_base_.segmentor, encoder_checkpoint=_base_.init_dacs),
    data_preprocessor=_base_.data_preprocessor,
)
