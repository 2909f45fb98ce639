"""Momentum (EMA) teacher: initialise it when its phase starts, update it after each step."""

from __future__ import annotations

import logging
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
    momentum encoder too). With the default ``teacher='teacher'`` an adapter's named teachers
    (``Adapter(teachers=dict(dacs=...))``, :meth:`uda.methods.Adapter.momentum_teachers`) are
    driven as well, each by its own settings.

    No method config lists this hook: ``configs/_base_/default_runtime.py`` declares it once
    in ``default_hooks`` (``teacher``), as mmdet's ``MeanTeacherHook`` drives a teacher from
    a hook (open-mmlab/mmdetection mmdet/engine/hooks/mean_teacher_hook.py). So it must be
    harmless wherever there is nothing to drive:

    - a model without a teacher (``model.teacher`` absent or ``None``: source-only, ABN,
      adversarial methods) leaves the hook idle;
    - ``TestTimeAdaptLoop`` calls no training hook points and updates the teacher itself;
    - several EMATeacherHooks on one teacher (an older config that still lists the hook in
      ``custom_hooks`` beside the default one): only the last in the Runner's hook order acts
      (``custom_hooks`` register after ``default_hooks``, so the listed one with its
      overrides), the others stand by, so the teacher still moves once per step.

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
        self.standby = False  # set in before_train when another hook drives the same teacher

    def _pairs(self, runner: Any) -> list[tuple[str, MomentumTeacher, Any]]:
        """``[(name, teacher, student)]`` of the runner's model; empty without a teacher."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        named = getattr(model, 'momentum_teachers', None)
        if self.teacher_attr == 'teacher' and callable(named):
            teachers = dict(named())  # the adapter's teacher and named teachers
        else:
            teacher = getattr(model, self.teacher_attr, None)
            teachers = {} if teacher is None else {self.teacher_attr: teacher}
        return [(n, *self._checked(t, model)) for n, t in teachers.items()]

    def _checked(self, teacher: Any, model: Any) -> tuple[MomentumTeacher, Any]:
        if not isinstance(teacher, MomentumTeacher):
            raise RuntimeError(
                f"EMATeacherHook: the model's '{self.teacher_attr}' is a "
                f'{type(teacher).__name__}, not a MomentumTeacher. Give the adapter '
                'teacher=dict(momentum=..., interval=..., start_iter=...), or name the '
                "model's MomentumTeacher attribute: EMATeacherHook(teacher=..., student=...)."
            )
        if self.interval is not None:
            teacher.interval = int(self.interval)
        return teacher, getattr(model, self.student_attr)

    def before_train(self, runner: Any) -> None:
        same = [
            h
            for h in getattr(runner, 'hooks', ())
            if isinstance(h, EMATeacherHook) and h.teacher_attr == self.teacher_attr
        ]
        self.standby = bool(same) and same[-1] is not self
        if self.standby:
            return
        pairs = self._pairs(runner)  # fail early when misconfigured
        if pairs and len(same) > 1:
            print_log(
                f"{len(same)} EMATeacherHooks drive the model's '{self.teacher_attr}'; this "
                'one (the last) updates it, the others stand by. default_hooks.teacher '
                '(configs/_base_/default_runtime.py) runs the hook for every config: remove '
                "dict(type='EMATeacherHook') from custom_hooks (or set default_hooks.teacher "
                'to the settings it overrides).',
                logger='current',
                level=logging.WARNING,
            )

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        for name, teacher, student in [] if self.standby else self._pairs(runner):
            if runner.iter >= teacher.start_iter and not bool(teacher.ready):
                teacher.init_from(student)
                print_log(
                    f'EMATeacherHook: {name} initialised from the student at iteration '
                    f'{runner.iter}; self-training starts.',
                    logger='current',
                )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        for _, teacher, student in [] if self.standby else self._pairs(runner):
            # runner.iter is the iteration that just ran (the loop increments after the hooks).
            if teacher.due(runner.iter):
                teacher.update(student, self.momentum)
