# DenseCL (uda/pretrain/densecl.py): MoCo v2 on the pooled features plus a dense InfoNCE between
# each query location and its most similar key location (backbone-feature cosine), against a
# second queue of pooled dense keys; loss = (1 - lambda) global + lambda dense.
# Reference values (WXinlong/DenseCL openselfsup/models/densecl.py, configs/selfsup/densecl):
# momentum 0.999, queue 65536 (both queues), dim 128, temperature 0.2, lambda 0.5, neck hidden
# = encoder width (2048 for ResNet-50), MoCo v2 augmentation.
# Small-data defaults as configs/_base_/pretrain/mocov2.py (momentum 0.99, queues of 128).
_base_ = ['./mocov2.py']  # queue, temperature, heads, views, hooks
model = dict(type='DenseCL', loss_lambda=0.5)
