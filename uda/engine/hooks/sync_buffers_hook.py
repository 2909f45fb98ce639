"""Average the data-parallel ranks' buffers before validation, testing and checkpoints."""

from __future__ import annotations

from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.runner.checkpoint import weights_to_cpu

from uda.engine.dist import AdapterDataParallel
from uda.registry import HOOKS


@HOOKS.register_module()
class SyncBuffersHook(Hook):
    """Make every rank hold the same BatchNorm statistics before it validates, tests or saves.

    :class:`uda.engine.AdapterDataParallel` averages buffers every ``buffer_sync_interval``
    training steps; between two syncs each rank has its own statistics. This hook syncs them
    (when a step changed them since the last sync) before validation and testing, and before a
    checkpoint is written, whose ``state_dict`` the Runner has already read: it is read again.
    ``prepare_distributed`` adds the hook to every run wrapped in ``AdapterDataParallel``; it
    does nothing for other models.
    """

    priority = 'ABOVE_NORMAL'

    @staticmethod
    def _sync(runner: Any) -> bool:
        model = runner.model
        return isinstance(model, AdapterDataParallel) and model.sync_buffers_if_stale()

    def before_val(self, runner: Any) -> None:
        self._sync(runner)

    def before_test(self, runner: Any) -> None:
        self._sync(runner)

    def before_save_checkpoint(self, runner: Any, checkpoint: Optional[dict]) -> None:
        if self._sync(runner) and checkpoint is not None and 'state_dict' in checkpoint:
            checkpoint['state_dict'] = weights_to_cpu(runner.model.module.state_dict())
