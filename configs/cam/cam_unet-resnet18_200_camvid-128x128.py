# Single-stage CAM on CamVid from image labels only (all 367 train frames, labels = the
# classes of each frame), tested on the 233 test frames; the weak side of "weak-only vs fully
# supervised at the same budget" (the supervised side:
# configs/source-only/source-only_unet-resnet18_200_camvid-128x128.py). 200 iterations, the
# first 42 classification-only (5 of the reference's 24 epochs). Random initialisation; the
# issue asks for the SSL-pretrained encoder (segmentor.encoder_checkpoint) once it exists.
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvid_weak_128x128.py',  # branch 'weak': image labels from the masks
    '../_base_/methods/cam.py',
    '../_base_/schedules/adamw_poly_200.py',
]
# Every CamVid pixel has a class (void aside): no background channel (bg_logit=None).
# Masks and PAMR at stride 2 (64x64) keep PAMR cheap on a CPU.
cam_maps = dict(_base_.cam_maps, bg_logit=None, cam_stride=2)
model = dict(
    segmentor=dict(
        _base_.segmentor,
        num_classes=_base_.num_classes,
        insertions=dict(gate=dict(type='ShallowGate', psi=0.3, in_index=2, channels=64)),
    ),
    data_preprocessor=_base_.data_preprocessor,
    terms=dict(cam=cam_maps, cam_mask=dict(cam_maps, start_iter=42)),
)
