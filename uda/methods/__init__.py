"""Methods: the adapter and its terms, one file per method."""
from uda.methods.adaptive_bn import AdaptiveBN
from uda.methods.adversarial import EntropyAdversarial, FeatureAdversarial, OutputAdversarial
from uda.methods.base import Adapter, Term
from uda.methods.minent import MinEnt
from uda.methods.sac import SACSelfTraining
from uda.methods.source_only import SourceCE

__all__ = ['Adapter', 'Term', 'AdaptiveBN', 'EntropyAdversarial', 'FeatureAdversarial',
           'MinEnt', 'OutputAdversarial', 'SACSelfTraining', 'SourceCE']
