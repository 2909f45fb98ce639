"""Momentum (EMA) teacher: initialise it when its phase starts, update it after each step."""

from __future__ import annotations

from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from uda.models.teacher import MomentumTeacher
from uda.registry import HOOKS


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Drive a :class:`uda.models.MomentumTeacher` of the model from the Runner's loop.

    The settings live in the teacher (``Adapter(teacher=dict(momentum, interval, start_iter,
    ramp))``), so one config block holds every number of a method. Before iteration
    ``start_iter`` the teacher is copied from the student (once: a resumed run keeps its saved
    teacher). After the optimiser step of iteration ``i >= start_iter`` with
    ``(i + 1 - start_iter) % interval == 0`` it becomes ``m * teacher + (1 - m) * student``
    (SAC: m=0.99 every 100 iterations; a per-step EMA is m=0.999, interval=1). Every rank runs
    the same update on identical weights, so the teacher needs no communication under DDP.
    Any model with a teacher and a student attribute works (self-supervised pretraining's
    momentum encoder too).

    Args:
        momentum: Overrides the teacher's momentum when given.
        interval: Overrides the teacher's interval when given.
        teacher: Attribute of the model holding the MomentumTeacher.
        student: Attribute of the model holding the network it follows.
    """

    priority = 'ABOVE_NORMAL'  # before checkpointing and logging of the same iteration

    def __init__(
        self,
        momentum: Optional[float] = None,
        interval: Optional[int] = None,
        teacher: str = 'teacher',
        student: str = 'student',
    ) -> None:
        self.momentum = momentum
        self.interval = interval
        self.teacher_attr, self.student_attr = teacher, student

    def _pair(self, runner: Any) -> tuple[MomentumTeacher, Any]:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        teacher = getattr(model, self.teacher_attr, None)
        if not isinstance(teacher, MomentumTeacher):
            raise RuntimeError(
                f'EMATeacherHook: the model has no MomentumTeacher at '
                f"'{self.teacher_attr}'. Give the adapter teacher=dict(momentum="
                '..., interval=..., start_iter=...) or remove the hook.'
            )
        if self.interval is not None:
            teacher.interval = int(self.interval)
        return teacher, getattr(model, self.student_attr)

    def before_train(self, runner: Any) -> None:
        self._pair(runner)  # fail early when misconfigured

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        teacher, student = self._pair(runner)
        if runner.iter >= teacher.start_iter and not bool(teacher.ready):
            teacher.init_from(student)
            print_log(
                f'EMATeacherHook: teacher initialised from the student at iteration '
                f'{runner.iter}; self-training starts.',
                logger='current',
            )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        teacher, student = self._pair(runner)
        # runner.iter is the iteration that just ran (the loop increments after the hooks).
        if teacher.due(runner.iter):
            teacher.update(student, self.momentum)
