"""Self-supervised pretraining of the segmentor's encoder on unlabelled images
(``tools/pretrain.py``; docs/pretraining.md). A sibling of :mod:`uda.methods`, not an Adapter.

A module defining a pretrainer must be imported here: the model registry imports
``uda.pretrain`` (``locations=``) to find it.
"""

from uda.pretrain.base import (
    ENCODER_LAYOUT,
    EncoderWithHead,
    SelfSupervisedPretrainer,
    batch_norm_batch_stats,
    build_encoder,
    embedding_std,
)
from uda.pretrain.moco import MoCoV2

__all__ = [
    'ENCODER_LAYOUT',
    'EncoderWithHead',
    'MoCoV2',
    'SelfSupervisedPretrainer',
    'batch_norm_batch_stats',
    'build_encoder',
    'embedding_std',
]
