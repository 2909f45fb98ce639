# MoCo v2 (uda/pretrain/moco.py): query encoder = the segmentor's encoder + 2-layer MLP head,
# key encoder = its momentum copy, InfoNCE against a queue of earlier keys.
# Reference values (facebookresearch/moco main_moco.py, moco/builder.py): momentum 0.999,
# queue 65536, temperature 0.2, MLP head hidden = encoder width (2048 for ResNet-50), out 128.
# Small-data defaults here (a few hundred steps on a few hundred images):
#   momentum 0.99: with 0.999 the key encoder's time constant (1000 steps) exceeds the whole
#     run and the keys would come from a near-random network (MoCo paper Table 4: 0.99 is
#     within 0.8 points of 0.999 on ImageNet);
#   queue 128 keys (4 steps of 32): the reference queue is 5% of ImageNet; a queue larger
#     than the dataset (2048 keys = 5.6x the 367 CamVid frames) holds stale keys of the query's
#     own image as negatives, and the loss then rises as the encoder gets better at telling
#     images apart (a 300-step CamVid run: 5.6 -> 6.15). With 128 keys a query meets a key of
#     its own image in ~30% of steps, one logit among 129. Raise it with the data size.
mocov2_view = dict(preset='mocov2_view')  # uda.augment.photometric.MOCOV2_VIEW
model = dict(
    type='MoCoV2',
    queue_size=128,
    temperature=0.2,
    proj_hidden_dim=None,  # = the encoder's last-stage channels (512 for ResNet-18)
    proj_dim=128,
    momentum=0.99,
    query_view='images.query',
    key_view='images.key',
    # facebookresearch/moco aug_plus photometric part, on the device per image
    # (uda.augment.mocov2_view): jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey p 0.2,
    # blur sigma U(0.1, 2) p 0.5 with a kernel of 10% of the crop side.
    photometric={'images.query': mocov2_view, 'images.key': mocov2_view},
)
# The key encoder follows the query encoder after every optimiser step (default_hooks.teacher,
# EMATeacherHook, reads the momentum from the model's MomentumTeacher); encoder.pth is written
# when training ends.
custom_hooks = [dict(type='EncoderExportHook')]
