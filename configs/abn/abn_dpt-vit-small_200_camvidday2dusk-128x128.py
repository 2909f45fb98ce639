# ABN on CamVid day -> dusk with a ViT-S/16 + DPT student: the network that a DINO / MoCo v3 /
# MAE encoder plugs into (docs/ssl_backbones.md), e.g.
#   --cfg-options model.segmentor.encoder_checkpoint.file=PATH
# From random weights a ViT trains worse than the U-Net ResNet-18 on 200 iterations; this leaf
# is the starting point for the self-supervised encoders, not a from-scratch baseline.
_base_ = [
    '../_base_/models/dpt_vit-small-p16.py',  # segmentor + data_preprocessor (size_divisor 32)
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day->dusk, dusk test, 11 classes
    '../_base_/methods/abn.py',  # SourceCE + target-only BN statistics
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(
        _base_.segmentor, num_classes=_base_.num_classes, encoder_kwargs=dict(img_size=128)
    ),
    data_preprocessor=_base_.data_preprocessor,
)
