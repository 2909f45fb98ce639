"""Networks: the smp segmentor wrapper, extra heads, discriminators and the preprocessor."""

from uda.models.data_preprocessor import SegDataPreprocessor
from uda.models.deeplabv2 import DeepLabV2
from uda.models.discriminator import FCDiscriminator, FeatureDiscriminator
from uda.models.pamr import PAMR, GlobalCueInjection, StochasticGate
from uda.models.segmentor import SMPSegmentor
from uda.models.teacher import MomentumTeacher

__all__ = [
    'DeepLabV2',
    'FCDiscriminator',
    'FeatureDiscriminator',
    'GlobalCueInjection',
    'MomentumTeacher',
    'PAMR',
    'SegDataPreprocessor',
    'SMPSegmentor',
    'StochasticGate',
]
