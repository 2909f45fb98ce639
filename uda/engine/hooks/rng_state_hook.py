"""Random number generator states in checkpoints, so that ``--resume`` continues the run exactly.

mmengine's resume restores weights, optimiser, schedulers and the iteration, and replays the
data loader up to that iteration, but it does not save the global RNGs: a resumed run draws
different SAC views, kornia noise and dropout masks from the uninterrupted one
(``open-mmlab/mmengine:mmengine/runner/runner.py`` ``save_checkpoint`` stores only the seed).
"""

from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from uda.registry import HOOKS


def get_rng_state() -> dict[str, Any]:
    """The states of torch (CPU and every CUDA device), numpy and python ``random``.

    Only tensors, ints, floats and tuples, so the project's weights-only checkpoint loader
    (``uda/engine/checkpoint.py``) reads them without allowing numpy types.
    """
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            keys=torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached),
        ),
        python=random.getstate(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states returned by :func:`get_rng_state`.

    CUDA states are restored when the saved and the current device counts match; otherwise
    the CUDA streams keep their seeded state (a run resumed on other hardware cannot repeat
    its GPU noise anyway).
    """
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    keys = n['keys'].numpy().astype(np.uint32)
    np.random.set_state(('MT19937', keys, n['pos'], n['has_gauss'], n['cached_gaussian']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the global RNG states with each checkpoint and restore them on resume.

    With it a run killed after its iteration-``k`` checkpoint and resumed with ``--resume``
    reaches the same final weights as the uninterrupted run (``tests/engine/test_resume.py``).
    Three details make that exact:

    - The states are restored in ``before_train``, after mmengine's ``resume`` has finished
      (it may re-seed the RNGs when the checkpoint's seed differs from the config's), and only
      for a resume: a ``load_from`` fine-tuning run starts from its own seed.
    - Validation runs with the RNG states forked (saved in ``before_val``, restored in
      ``after_val``): creating the val data loader's iterator draws from torch's generator,
      and the checkpoint of an iteration is written before that iteration's validation. So
      the saved state is the one the next step starts from, and how often a run validates
      does not change its training.
    - The training data loader's samples do not draw from the global RNGs (the sampler has
      its own generator, albumentations its own seeded RNG), so mmengine's replay of the
      loader up to the resumed iteration leaves the restored states untouched.

    Under DDP the checkpoint holds rank 0's states (checkpoints are written by rank 0) and
    every rank restores them.
    """

    priority = 'VERY_HIGH'  # fork before any other hook's validation work draws numbers

    def __init__(self) -> None:
        self._pending: Optional[dict[str, Any]] = None
        self._pending_iter = -1
        self._val_state: Optional[dict[str, Any]] = None

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint['rng_state'] = get_rng_state()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None:
            return
        self._pending = state
        self._pending_iter = int(checkpoint.get('meta', {}).get('iter', -1))

    def before_train(self, runner: Any) -> None:
        state, self._pending = self._pending, None
        # A resume sets the loop's iteration from the checkpoint; load_from leaves it at 0.
        if state is None or runner.iter != self._pending_iter or runner.iter == 0:
            return
        set_rng_state(state)
        print_log(
            f'RNGStateHook: restored the RNG states of iteration {runner.iter}.', logger='current'
        )

    def before_val(self, runner: Any) -> None:
        self._val_state = get_rng_state()

    def after_val(self, runner: Any) -> None:
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None
