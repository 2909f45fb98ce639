# DACS on GTA5 -> Cityscapes with DAFormer's network (MiT-B5 + DAFormer's context-aware fusion
# head; the file name keeps 'segformer-mit-b5', the SegFormer encoder) at DAFormer's settings
# (lhoyer/DAFormer configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py:
# AdamW 6e-5, head lr x10, no weight decay on norm layers, linear warm-up 1500 iterations then
# poly 1.0, 40k iterations, batch 2, 512x512 crops, EMA alpha 0.999, pseudo-label margins
# 15 / 120). Not the full DAFormer: no rare-class sampling (the dacs-rcs leaf adds it) and no
# ImageNet feature distance (DAFormer reports 68.3 mIoU with all of them). From DAFormer's
# ImageNet MiT-B5 (mit_b5.pth; init_mit_b5 of the model base, docs/weights.md):
#   python tools/train.py configs/dacs/dacs_segformer-mit-b5_40k_gta2cityscapes-512x512.py
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/daformer_mit-b5.py',  # DAFormer segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/dacs.py',  # DACS's teacher, quality labeller, ClassMix
    '../_base_/schedules/adamw_poly_40k_warmup.py',  # DAFormer's AdamW + warm-up poly, 40k
]
model = dict(
    type='Adapter',
    teacher=_base_.dacs_teacher,
    labellers=dict(teacher_quality=_base_.teacher_quality),
    terms=dict(src=_base_.dacs_source, mix=_base_.class_mix),
    segmentor=_base_.segmentor,  # init_mit_b5
    data_preprocessor=_base_.data_preprocessor,
)
# DAFormer's paramwise_cfg: the head (DAFormer's decode_head: net.decoder, from the schedule,
# + the 1x1 classifier conv_seg in net.segmentation_head) at 10x the learning rate, the MiT
# LayerNorms without weight decay (DAFormer's pos_block key has no counterpart in MiT). Merged
# into the schedule's custom_keys.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'net.segmentation_head': dict(lr_mult=10.0),
            'norm': dict(decay_mult=0.0),
        }
    )
)
