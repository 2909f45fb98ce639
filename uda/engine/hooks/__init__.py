"""Training hooks."""
from uda.engine.hooks.prediction_writer import PredictionWriterHook
from uda.engine.hooks.visualization_hook import SegVisualizationHook

__all__ = ['PredictionWriterHook', 'SegVisualizationHook']
