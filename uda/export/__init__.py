"""Export of trained networks (ONNX / TorchScript / safetensors) and their checks."""

from uda.export.api import FORMATS, TOLERANCE, export
from uda.export.common import ExportVerificationError, load_segmentor
from uda.export.metadata import read_sidecar, sidecar_path
from uda.export.safetensors_io import load_safetensors

__all__ = [
    'FORMATS',
    'TOLERANCE',
    'ExportVerificationError',
    'export',
    'load_safetensors',
    'load_segmentor',
    'read_sidecar',
    'sidecar_path',
]
