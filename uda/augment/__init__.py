"""On-device augmentation: geometric views and their fusion, photometric noise, mixing masks."""
from uda.augment.views import Views, compose_affine, cut_views, fuse_views, invert_affine, \
    sample_views, warp

__all__ = ['Views', 'compose_affine', 'cut_views', 'fuse_views', 'invert_affine', 'sample_views',
           'warp']
