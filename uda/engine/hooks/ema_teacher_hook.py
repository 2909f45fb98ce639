"""Momentum (EMA) teacher: initialise it when self-training starts, update it after each step."""
from __future__ import annotations

from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from uda.registry import HOOKS


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Drive the adapter's momentum teacher from the Runner's loop.

    The settings live in the model (``Adapter(teacher=dict(momentum, interval, start_iter))``),
    so one config block holds every number of a method. Before iteration ``start_iter`` the
    teacher is copied from the student (once: a resumed run keeps its saved teacher). After the
    optimiser step of iteration ``i >= start_iter`` with ``(i + 1 - start_iter) % interval == 0``
    the teacher becomes ``m * teacher + (1 - m) * student`` (SAC: m=0.99 every 100 iterations;
    a per-step EMA is m=0.999, interval=1). Every rank runs the same update on identical
    weights, so the teacher needs no communication under DDP.

    Args:
        momentum: Overrides the model's ``teacher.momentum`` when given.
        interval: Overrides the model's ``teacher.interval`` when given.
    """

    priority = 'ABOVE_NORMAL'  # before checkpointing and logging of the same iteration

    def __init__(self, momentum: Optional[float] = None, interval: Optional[int] = None) -> None:
        self.momentum = momentum
        self.interval = interval

    @staticmethod
    def _model(runner: Any) -> Any:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, 'teacher', None) is None:
            raise RuntimeError('EMATeacherHook: the model has no teacher. Give the adapter '
                               'teacher=dict(momentum=..., interval=...) or remove the hook.')
        return model

    def _settings(self, model: Any) -> tuple[float, int, int]:
        cfg = model.teacher_cfg
        momentum = cfg['momentum'] if self.momentum is None else float(self.momentum)
        interval = cfg['interval'] if self.interval is None else int(self.interval)
        return momentum, interval, cfg['start_iter']

    def before_train(self, runner: Any) -> None:
        self._model(runner)  # fail early when misconfigured

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        model = self._model(runner)
        _, _, start = self._settings(model)
        if runner.iter >= start and not model.self_training:
            model.init_teacher()
            print_log(f'EMATeacherHook: teacher initialised from the student at iteration '
                      f'{runner.iter}; self-training starts.', logger='current')

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        model = self._model(runner)
        momentum, interval, start = self._settings(model)
        i = runner.iter  # the iteration that just ran (the loop increments after the hooks)
        if model.self_training and i >= start and (i + 1 - start) % interval == 0:
            model.update_teacher(momentum)
