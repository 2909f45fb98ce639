"""Self-supervised pretraining of the segmentor's encoder on unlabelled images
(``tools/pretrain.py``; docs/pretraining.md). A sibling of :mod:`uda.methods`, not an Adapter.

A module defining a pretrainer must be imported here: the model registry imports
``uda.pretrain`` (``locations=``) to find it.
"""

from uda.models.batchnorm import batch_norm_batch_stats
from uda.pretrain.base import (
    ENCODER_LAYOUT,
    EncoderWithHead,
    SelfSupervisedPretrainer,
    build_encoder,
    embedding_std,
)
from uda.pretrain.densecl import DenseCL, DenseCLNetwork, dense_info_nce
from uda.pretrain.dino import DINO, teacher_temperature, weight_normed_linear
from uda.pretrain.moco import MoCoV2

__all__ = [
    'DINO',
    'DenseCL',
    'DenseCLNetwork',
    'ENCODER_LAYOUT',
    'EncoderWithHead',
    'MoCoV2',
    'SelfSupervisedPretrainer',
    'batch_norm_batch_stats',
    'build_encoder',
    'dense_info_nce',
    'embedding_std',
    'teacher_temperature',
    'weight_normed_linear',
]
