# Single-stage CAM on Pascal VOC 2012 (the reference setting, 21 classes with background):
# image labels only, 24 epochs, the first 5 classification-only. The reference network is a
# wide ResNet-38 + ASPP + a stride-4 skip decoder + GCI + stochastic gate; here smp's
# DeepLab-v3+ (ASPP + stride-4 skip decoder) on ResNet-101 with the same GCI + gate
# The reference starts from an ImageNet WideResNet-38; this ResNet-101 starts from torchvision's
# ImageNet ResNet-101 (the file da-sac uses; visinf/da-sac README.md; docs/weights.md).
# Reported: VOC12 val 59.7 mIoU (62.7 with CRF).
_base_ = [
    '../_base_/datasets/voc12aug_321x321.py',
    '../_base_/methods/cam.py',
    '../_base_/schedules/sgd_const_16k_cam.py',
]
cam_maps = dict(_base_.cam_maps, background=0, cam_stride=4)
segmentor = dict(
    type='SMPSegmentor',
    arch='DeepLabV3Plus',
    encoder_name='resnet101',
    encoder_weights=None,
    encoder_checkpoint=dict(
        file='resnet101-5d3b4d8f.pth',  # SHA-256 prefix 5d3b4d8f, checked on download
        url='https://download.pytorch.org/models/resnet101-5d3b4d8f.pth',
        layout='torchvision',
    ),
    num_classes=_base_.num_classes,
    insertions=dict(
        background=dict(type='ConstantLogit', index=0, value=1.0),  # background = logit 1
        # SG_PSI; GCI on stride-4 features.
        gate=dict(type='ShallowGate', psi=0.3, in_index=2, channels=256),
    ),
)
model = dict(
    segmentor=segmentor,
    data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=32),
    test_cfg=_base_.inference_cfg,
    # TRAIN.PRETRAIN: 5 epochs x floor(10,582 / 16) = 3,305 classification-only iterations
    # (drop_last: visinf/1-stage-wseg datasets/__init__.py:22-29, train.py:83).
    # The DeepLab-v3+ masks are at stride 4 as the reference's; PAMR runs there (cam_stride=4).
    terms=dict(cam=cam_maps, cam_mask=dict(cam_maps, start_iter=3305)),
)
