"""Networks: the smp segmentor wrapper, extra heads, discriminators and the preprocessor."""

from uda.models.daformer import DAFormer
from uda.models.data_preprocessor import SegDataPreprocessor
from uda.models.deeplabv2 import DeepLabV2
from uda.models.discriminator import FCDiscriminator, FeatureDiscriminator
from uda.models.insertions import ConstantLogit, SegmentorInsertion, ShallowGate
from uda.models.pamr import PAMR, GlobalCueInjection, StochasticGate
from uda.models.segmentor import SMPSegmentor
from uda.models.teacher import MomentumTeacher
from uda.models.unimatch_deeplabv3plus import UniMatchDeepLabV3Plus

__all__ = [
    'ConstantLogit',
    'DAFormer',
    'DeepLabV2',
    'FCDiscriminator',
    'FeatureDiscriminator',
    'GlobalCueInjection',
    'MomentumTeacher',
    'PAMR',
    'SegDataPreprocessor',
    'SegmentorInsertion',
    'ShallowGate',
    'SMPSegmentor',
    'StochasticGate',
    'UniMatchDeepLabV3Plus',
]
