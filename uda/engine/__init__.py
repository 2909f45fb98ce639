"""Engine: hooks, optimiser constructors and the torch>=2.6 checkpoint loader (installed on
import)."""

from uda.engine import checkpoint  # noqa: F401  (installs the safe checkpoint loader)
from uda.engine.amp import CPUAmpOptimWrapper, apply_amp
from uda.engine.dist import (
    AdapterDataParallel,
    GradientSync,
    average_gradients,
    prepare_distributed,
)
from uda.engine.hooks import SegVisualizationHook
from uda.engine.optim_constructor import (
    AdapterOptimWrapperConstructor,
    LayerDecayOptimWrapperConstructor,
)

__all__ = [
    'AdapterDataParallel',
    'AdapterOptimWrapperConstructor',
    'CPUAmpOptimWrapper',
    'GradientSync',
    'LayerDecayOptimWrapperConstructor',
    'SegVisualizationHook',
    'apply_amp',
    'average_gradients',
    'prepare_distributed',
]
