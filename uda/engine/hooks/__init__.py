"""Training hooks."""

from uda.engine.hooks.checkpoint_hook import SafeCheckpointHook
from uda.engine.hooks.ema_teacher_hook import EMATeacherHook
from uda.engine.hooks.prediction_writer import PredictionWriterHook
from uda.engine.hooks.visualization_hook import SegVisualizationHook

__all__ = ['EMATeacherHook', 'PredictionWriterHook', 'SafeCheckpointHook', 'SegVisualizationHook']
