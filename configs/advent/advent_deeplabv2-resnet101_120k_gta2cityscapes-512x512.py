# ADVENT's AdvEnt on GTA5 -> Cityscapes with DeepLab-v2 ResNet-101 at the reference settings
# (valeoai/ADVENT advent/domain_adaptation/config.py; reported 43.8 mIoU on Cityscapes val):
# multi-level, batch 1 + 1, 120k iterations of a 250k poly schedule. The reference's aux
# classifier is an ASPP on layer3; uda's aux_head type='aspp' is that classifier.
# Starts from ADVENT's ImageNet DeepLab init (init_advent of the model base; docs/weights.md).
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = [
    '../_base_/models/deeplabv2_resnet101.py',  # segmentor + data_preprocessor
    '../_base_/datasets/gta2cityscapes_512x512.py',  # GTA5 source, Cityscapes target/val
    '../_base_/methods/advent.py',  # SourceCE (+0.1 aux) + EntropyAdversarial
    '../_base_/schedules/sgd-adam_poly_120k.py',  # SGD segmentor + Adam discriminators
]
# Multi-level: the auxiliary head reads encoder stage -2 (layer3, 1024 channels, stride 8).
model = dict(
    segmentor=dict(
        _base_.segmentor,
        aux_head=dict(type='aspp', in_index=-2),
        encoder_checkpoint=_base_.init_advent,
    ),
    data_preprocessor=_base_.data_preprocessor,
)
train_dataloader = dict(batch_size=1)  # one source + one target image, as the reference
# Both classifiers (the ASPP head and the aux head) at 10x the learning rate, as the reference.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'net.decoder': dict(lr_mult=10.0), 'heads.aux': dict(lr_mult=10.0)}
    )
)
