"""Crash-safe periodic checkpoints: a kill -9 during a save always leaves one to resume from."""

from __future__ import annotations

import glob
import os
import os.path as osp
from typing import Any, Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from uda.engine.checkpoint import DISK_ERRNOS, commit_file, save_failure, write_text_atomic
from uda.registry import HOOKS

TMP_SUFFIX = '.tmp'


def _read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, or None."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip() or None
    except OSError:
        return None


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's :class:`~mmengine.hooks.CheckpointHook` with the save steps reordered.

    mmengine 0.10.7 (``mmengine/hooks/checkpoint_hook.py`` ``_save_checkpoint_with_step``)
    deletes the oldest checkpoint first, writes the new one in place, then rewrites
    ``last_checkpoint``; a kill during the write leaves a truncated ``iter_N.pth`` named by
    ``last_checkpoint`` and, with ``max_keep_ckpts=1``, nothing else. Here:

    1. the Runner writes ``iter_N.pth.tmp`` in the same folder (``Runner.save_checkpoint``);
    2. it is fsynced and renamed to ``iter_N.pth`` (``os.replace``, atomic on POSIX);
    3. ``last_checkpoint`` is replaced the same way;
    4. only then are checkpoints beyond ``max_keep_ckpts`` deleted.

    ``--resume`` (``resume='auto'``) reads ``last_checkpoint``, which therefore always names a
    complete file. A full or read-only disk (``ENOSPC``, ``EDQUOT``, ``EROFS`` ...) during
    steps 1-3 stops training with one error naming the folder and its free space
    (:func:`uda.engine.checkpoint.save_failure`); the previous checkpoint and
    ``last_checkpoint`` stay as they were, so ``--resume`` continues from there. An
    ``iter_N.pth.tmp`` left by a killed save is deleted when the next run starts. Takes the
    arguments of ``CheckpointHook``; checkpoints on remote backends (``backend_args``) and
    ``save_best`` copies (never resumed from) keep mmengine's order.
    """

    def before_train(self, runner: Any) -> None:
        super().before_train(runner)
        if self._local() and is_main_process():
            pattern = glob.escape(self.filename_tmpl).replace('{}', '*') + TMP_SUFFIX
            for stale in glob.glob(osp.join(glob.escape(str(self.out_dir)), pattern)):
                os.remove(stale)

    def _local(self) -> bool:
        return isinstance(self.file_backend, LocalBackend)

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        if not self._local():
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        # The same bookkeeping as mmengine (the saved message hub lists the kept steps), but
        # the outdated checkpoints are only remembered here and deleted after the save.
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        previous = _read_last_checkpoint(runner.work_dir)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        tmp_path = self.last_ckpt + TMP_SUFFIX
        try:
            runner.save_checkpoint(
                self.out_dir,
                filename + TMP_SUFFIX,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args,
            )
            if not is_main_process():  # Runner.save_checkpoint writes on the main process only
                return
            commit_file(tmp_path, self.last_ckpt)
        except BaseException as err:
            if is_main_process() and osp.exists(tmp_path):
                os.remove(tmp_path)
            if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
                raise save_failure(err, self.last_ckpt, previous) from err
            raise
        try:
            write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        except OSError as err:  # last_checkpoint still names `previous`, a complete file
            if err.errno in DISK_ERRNOS:
                pointer = osp.join(runner.work_dir, 'last_checkpoint')
                raise save_failure(err, pointer, previous) from err
            raise
        for old in outdated:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if old != step and osp.isfile(path):
                os.remove(path)
