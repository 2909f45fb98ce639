"""Registries of uda, children of mmengine's roots.

Each registry names the modules that register into it (``locations=``), so building a
config imports them: a config never needs ``custom_imports``. An unknown ``type=`` fails with
the list of names the registry knows and the package __init__.py files that must import a
new module, which is the fix a user needs.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry


class UdaRegistry(Registry):
    """A registry whose failed look-up lists what is registered instead of returning None."""

    def available(self) -> list[str]:
        """Names this registry resolves: its own, then its ancestors'."""
        self.import_from_location()
        names: set[str] = set(self._module_dict)
        parent = self.parent
        while parent is not None:
            names.update(parent._module_dict)
            parent = parent.parent
        return sorted(names)

    def _init_files(self) -> str:
        """The ``__init__.py`` files of the packages this registry imports (``locations=``)."""
        locations = list(getattr(self, '_locations', None) or ['uda'])
        return ', '.join(loc.replace('.', '/') + '/__init__.py' for loc in locations)

    def get(self, key: str) -> Optional[Any]:
        obj = super().get(key)
        if obj is None:
            names = self.available()
            close = difflib.get_close_matches(key, names, n=3)
            hint = f' Did you mean {", ".join(repr(c) for c in close)}?' if close else ''
            own = sorted(self._module_dict)
            raise KeyError(
                f"Unknown type '{key}' in the '{self.name}' registry.{hint} "
                f'uda registers: {", ".join(own) if own else "(nothing)"}; '
                f"with mmengine's: {', '.join(n for n in names if n not in own)}. "
                'Fix the `type=` in your config. For a class of your own: decorate it with '
                "this registry's register_module() and import its module in the package "
                f'__init__.py of one of {self._init_files()}: the registry imports only those '
                'packages (`locations=`), so a module they do not import never registers.'
            )
        return obj


MODELS = UdaRegistry(
    'model',
    parent=MMENGINE_MODELS,
    scope='uda',
    locations=['uda.models', 'uda.methods', 'uda.losses', 'uda.pretrain'],
)
# Terms are the parts of a method (source CE, adaptive BN, self-training, adversarial ...).
TERMS = UdaRegistry('term', scope='uda', locations=['uda.methods'])
# Pseudo-labellers shared by terms within a step (SAC's fused labels, confidence threshold,
# DACS quality weight), held by the adapter under their config names.
LABELLERS = UdaRegistry('labeller', scope='uda', locations=['uda.methods'])
DATASETS = UdaRegistry('dataset', parent=MMENGINE_DATASETS, scope='uda', locations=['uda.data'])
TRANSFORMS = UdaRegistry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='uda', locations=['uda.data']
)
DATA_SAMPLERS = UdaRegistry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='uda', locations=['uda.data']
)
# The Runner looks collate functions up in mmengine's root FUNCTIONS registry without switching
# scope, so `uda_collate` registers there (uda.data.multi_branch) and uda has no child for it.
FUNCTIONS = MMENGINE_FUNCTIONS
HOOKS = UdaRegistry('hook', parent=MMENGINE_HOOKS, scope='uda', locations=['uda.engine'])
METRICS = UdaRegistry('metric', parent=MMENGINE_METRICS, scope='uda', locations=['uda.evaluation'])
# Evaluators that hold metrics (DomainEvaluator: one metric per validation domain); the Runner
# builds a val_evaluator with a `metrics` key through this registry.
EVALUATOR = UdaRegistry(
    'evaluator', parent=MMENGINE_EVALUATOR, scope='uda', locations=['uda.evaluation']
)
OPTIM_WRAPPER_CONSTRUCTORS = UdaRegistry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='uda',
    locations=['uda.engine'],
)
# Children for the rest of what the Runner builds, so building under scope 'uda' finds them
# (and an unknown optimizer / scheduler / loop type lists the registered names).
LOOPS = UdaRegistry('loop', parent=MMENGINE_LOOPS, scope='uda', locations=['uda.engine'])
OPTIM_WRAPPERS = UdaRegistry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='uda', locations=['uda.engine']
)
OPTIMIZERS = UdaRegistry(
    'optimizer', parent=MMENGINE_OPTIMIZERS, scope='uda', locations=['uda.engine']
)
PARAM_SCHEDULERS = UdaRegistry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='uda', locations=['uda.engine']
)
LOG_PROCESSORS = UdaRegistry(
    'log_processor', parent=MMENGINE_LOG_PROCESSORS, scope='uda', locations=['uda.engine']
)
VISUALIZERS = UdaRegistry(
    'visualizer', parent=MMENGINE_VISUALIZERS, scope='uda', locations=['uda.engine']
)
VISBACKENDS = UdaRegistry(
    'vis_backend', parent=MMENGINE_VISBACKENDS, scope='uda', locations=['uda.engine']
)
MODEL_WRAPPERS = UdaRegistry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='uda', locations=['uda.engine']
)
# Layouts of checkpoints written by other code bases (da-sac, ADVENT, DAFormer ...), converted
# to uda's segmentor by tools/convert_checkpoint.py and by every tool that loads a checkpoint.
CHECKPOINT_LAYOUTS = UdaRegistry('checkpoint layout', scope='uda', locations=['uda.models.layouts'])
WEIGHT_INITIALIZERS = UdaRegistry(
    'weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, scope='uda', locations=['uda.models']
)

ALL_REGISTRIES = dict(
    models=MODELS,
    terms=TERMS,
    labellers=LABELLERS,
    datasets=DATASETS,
    transforms=TRANSFORMS,
    data_samplers=DATA_SAMPLERS,
    hooks=HOOKS,
    metrics=METRICS,
    optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS,
    model_wrappers=MODEL_WRAPPERS,
    checkpoint_layouts=CHECKPOINT_LAYOUTS,
)
