# Virtual adversarial training on the target branch of CamVid day -> dusk at the ABN
# benchmark's budget (UNet-ResNet-18, 128x128 crops, 200 iterations). No teacher: VAT runs
# from iteration 0 (eps 8.0, the paper's and the synthetic leaf's value).
_base_ = [
    '../_base_/models/unet_resnet18.py',  # segmentor + data_preprocessor
    '../_base_/datasets/camvidday2dusk_128x128.py',  # day source, dusk target, dusk test
    '../_base_/methods/vat.py',  # SourceCE + VirtualAdversarial
    '../_base_/schedules/adamw_poly_200.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    # As the ABN CamVid leaf: BN running statistics follow the target batches only (the
    # perturbed VAT forwards never update them).
    bn_policy='target_only',
)
