# DenseCL (uda/pretrain/densecl.py): MoCo v2 on the pooled features plus a dense InfoNCE between
# each query location and its most similar key location (backbone-feature cosine), against a
# second queue of pooled dense keys; loss = (1 - lambda) global + lambda dense.
# Reference values (WXinlong/DenseCL openselfsup/models/densecl.py, configs/selfsup/densecl):
# momentum 0.999, queue 65536 (both queues), dim 128, temperature 0.2, lambda 0.5, neck hidden
# = encoder width (2048 for ResNet-50), MoCo v2 augmentation.
# Small-data defaults as configs/_base_/pretrain/mocov2.py (momentum 0.99, queues of 128).
model = dict(
    type='DenseCL',
    queue_size=128,
    temperature=0.2,
    loss_lambda=0.5,
    proj_hidden_dim=None,  # = the encoder's last-stage channels (512 for ResNet-18)
    proj_dim=128,
    momentum=0.99,
    query_view='images.query',
    key_view='images.key',
    # MoCo v2 photometric views, as DenseCL (see configs/_base_/pretrain/mocov2.py).
    photometric={
        'images.query': dict(
            jitter=(0.4, 0.4, 0.4, 0.1),
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=0.5,
            blur_kernel='relative',
        ),
        'images.key': dict(
            jitter=(0.4, 0.4, 0.4, 0.1),
            jitter_p=0.8,
            grey_p=0.2,
            blur_sigma=(0.1, 2.0),
            blur_p=0.5,
            blur_kernel='relative',
        ),
    },
)
custom_hooks = [dict(type='EMATeacherHook'), dict(type='EncoderExportHook')]
