"""Average the data-parallel ranks' buffers before validation, testing and checkpoints."""

from __future__ import annotations

from typing import Any, Optional

from mmengine.hooks import CheckpointHook, Hook

from uda.engine.dist import AdapterDataParallel
from uda.registry import HOOKS


@HOOKS.register_module()
class SyncBuffersHook(Hook):
    """Make every rank hold the same BatchNorm statistics before it validates, tests or saves.

    :class:`uda.engine.AdapterDataParallel` averages buffers every ``buffer_sync_interval``
    training steps (floats only); between two syncs each rank has its own statistics. This
    hook syncs them fully (when a step changed them since the last full sync) before validation
    and testing, and after every training iteration at which a ``CheckpointHook`` saves
    (its interval, or the last iteration with ``save_last``), before it saves: the Runner's
    ``save_checkpoint`` runs on rank 0 only (``@master_only``), so ``before_save_checkpoint``
    cannot hold a collective. ``prepare_distributed`` adds the hook to every run wrapped in
    ``AdapterDataParallel``; it does nothing for other models.
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

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Optional[dict] = None
    ) -> None:
        for hook in getattr(runner, 'hooks', []):
            if not isinstance(hook, CheckpointHook) or hook.by_epoch:
                continue
            due = hook.interval > 0 and self.every_n_train_iters(runner, hook.interval)
            if due or (hook.save_last and self.is_last_train_iter(runner)):
                self._sync(runner)
                return
