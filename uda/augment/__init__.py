"""On-device augmentation: geometric views and their fusion, photometric noise, mixing masks."""

from uda.augment.mixing import block_masks, class_mix_masks, cutmix_boxes, mix
from uda.augment.photometric import (
    DACS_STRONG,
    MOCOV2_VIEW,
    PRESETS,
    SAC_NOISE,
    UNIMATCH_STRONG,
    PhotometricAugment,
    build_photometric,
    dacs_strong,
    mocov2_view,
    photometric_view,
    relative_kernel,
    sac_noise,
    unimatch_strong,
)
from uda.augment.views import (
    Views,
    compose_affine,
    cut_views,
    fuse_views,
    invert_affine,
    sample_views,
    warp,
)

__all__ = [
    'Views',
    'compose_affine',
    'cut_views',
    'fuse_views',
    'invert_affine',
    'sample_views',
    'warp',
    'PhotometricAugment',
    'DACS_STRONG',
    'MOCOV2_VIEW',
    'PRESETS',
    'SAC_NOISE',
    'UNIMATCH_STRONG',
    'build_photometric',
    'dacs_strong',
    'mocov2_view',
    'photometric_view',
    'relative_kernel',
    'sac_noise',
    'unimatch_strong',
    'block_masks',
    'class_mix_masks',
    'cutmix_boxes',
    'mix',
]
