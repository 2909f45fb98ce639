"""Networks: the smp segmentor wrapper, extra heads, and the data preprocessor."""
from uda.models.data_preprocessor import SegDataPreprocessor
from uda.models.deeplabv2 import DeepLabV2
from uda.models.segmentor import SMPSegmentor

__all__ = ['DeepLabV2', 'SegDataPreprocessor', 'SMPSegmentor']
