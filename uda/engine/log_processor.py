"""The console line of training: a few numbers per iteration; TensorBoard keeps every scalar.

mmengine's ``LogProcessor`` prints every scalar a step logs; a method with per-class
statistics (SAC: a class prior and a threshold per class, 38 numbers on Cityscapes) then fills
the line. :class:`ConsoleLogProcessor` prints the learning rate, time, the total loss, one loss
per term and the model's few diagnostics (``Adapter.console_keys``), and hands every scalar to
the Visualizer (TensorBoard, ``scalars.json``) as mmengine does.
"""

from __future__ import annotations

from typing import Any, Optional

from mmengine.runner import LogProcessor

from uda.registry import LOG_PROCESSORS

# Scalars of the line that mmengine formats itself.
ALWAYS = ('time', 'data_time')


@LOG_PROCESSORS.register_module()
class ConsoleLogProcessor(LogProcessor):
    """mmengine's ``LogProcessor`` whose training line shows only the model's console keys.

    The model (unwrapped from a data-parallel wrapper) names them with ``console_keys()``;
    a model without it gets mmengine's full line. Learning rates always show.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._console: Optional[set[str]] = None

    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict, str]:
        tag, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        model = getattr(runner.model, 'module', runner.model)
        console_keys = getattr(model, 'console_keys', None)
        if mode != 'train' or not callable(console_keys):
            return tag, log_str
        self._console = set(console_keys()) | set(ALWAYS)
        try:
            _, log_str = super().get_log_after_iter(runner, batch_idx, mode)
        finally:
            self._console = None
        return tag, log_str  # the full tag goes to the Visualizer

    def _collect_scalars(self, *args: Any, **kwargs: Any) -> dict:
        tag = super()._collect_scalars(*args, **kwargs)
        if self._console is None:
            return tag
        return type(tag)((k, v) for k, v in tag.items() if k in self._console or k.endswith('lr'))


__all__ = ['ConsoleLogProcessor']
