"""Training hooks."""

from uda.engine.hooks.checkpoint_hook import SafeCheckpointHook
from uda.engine.hooks.cpu_threads_hook import CPUThreadsHook
from uda.engine.hooks.ema_teacher_hook import EMATeacherHook
from uda.engine.hooks.encoder_export_hook import EncoderExportHook
from uda.engine.hooks.prediction_writer import PredictionWriterHook
from uda.engine.hooks.rng_state_hook import RNGStateHook, get_rng_state, set_rng_state
from uda.engine.hooks.sync_buffers_hook import SyncBuffersHook
from uda.engine.hooks.visualization_hook import SegVisualizationHook

__all__ = [
    'CPUThreadsHook',
    'EMATeacherHook',
    'EncoderExportHook',
    'PredictionWriterHook',
    'RNGStateHook',
    'SafeCheckpointHook',
    'SegVisualizationHook',
    'SyncBuffersHook',
    'get_rng_state',
    'set_rng_state',
]
