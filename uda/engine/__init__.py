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
from uda.engine.log_processor import ConsoleLogProcessor
from uda.engine.optim_constructor import (
    AdapterOptimWrapperConstructor,
    LayerDecayOptimWrapperConstructor,
)
from uda.engine.test_time import (
    CollapseGuard,
    TestTimeAdapter,
    TestTimeAdaptLoop,
    prior_batch_norm,
)

__all__ = [
    'AdapterDataParallel',
    'AdapterOptimWrapperConstructor',
    'CPUAmpOptimWrapper',
    'CollapseGuard',
    'ConsoleLogProcessor',
    'GradientSync',
    'LayerDecayOptimWrapperConstructor',
    'SegVisualizationHook',
    'TestTimeAdaptLoop',
    'TestTimeAdapter',
    'apply_amp',
    'average_gradients',
    'prepare_distributed',
    'prior_batch_norm',
]
