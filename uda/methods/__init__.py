"""Methods: the adapter, its step context and labellers, and one file per term.

A module defining a term or labeller must be imported here: the registries import
``uda.methods`` (``locations=``) to find them.
"""

from uda.methods.adapter import Adapter
from uda.methods.adversarial import EntropyAdversarial, FeatureAdversarial, OutputAdversarial
from uda.methods.cam import ImageLabelFilter, SingleStageCAM, SingleStageCAMMask
from uda.methods.class_mix import ClassMix
from uda.methods.context import PseudoLabels, StepContext
from uda.methods.cotta import CoTTALabeller, CoTTASelfTraining
from uda.methods.labellers import ConfidenceLabeller, QualityLabeller
from uda.methods.masked_consistency import MaskedConsistency
from uda.methods.minent import MinEnt
from uda.methods.prediction_statistics import PredictionStatistics
from uda.methods.sac import SACLabeller, SACSelfTraining
from uda.methods.source_only import SourceCE
from uda.methods.tent import TentEntropy
from uda.methods.term import Labeller, Term
from uda.methods.unimatch import UniMatch
from uda.methods.virtual_adversarial import VirtualAdversarial
from uda.methods.weak_strong import WeakStrongConsistency

__all__ = [
    'Adapter',
    'ClassMix',
    'CoTTALabeller',
    'CoTTASelfTraining',
    'ConfidenceLabeller',
    'EntropyAdversarial',
    'ImageLabelFilter',
    'FeatureAdversarial',
    'Labeller',
    'MaskedConsistency',
    'MinEnt',
    'OutputAdversarial',
    'PredictionStatistics',
    'PseudoLabels',
    'QualityLabeller',
    'SACLabeller',
    'SACSelfTraining',
    'SingleStageCAM',
    'SingleStageCAMMask',
    'SourceCE',
    'StepContext',
    'TentEntropy',
    'Term',
    'VirtualAdversarial',
    'WeakStrongConsistency',
    'UniMatch',
]
