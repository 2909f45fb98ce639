"""A full or read-only disk while saving a checkpoint (issue 25, item 4): one error naming the
folder and its free space, the previous checkpoint and `last_checkpoint` still valid, and
`--resume` continuing once there is room. The OS error is injected; no disk is filled."""

from __future__ import annotations

import errno
import glob
import os.path as osp
import shutil

import pytest
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.runner import Runner

from tests.conftest import toy_runner_cfg
from uda.engine import checkpoint as ckpt_mod
from uda.engine.checkpoint import CheckpointSaveError, load_checkpoint_file, save_failure


def _cfg(work_dir: str) -> dict:
    cfg = toy_runner_cfg(work_dir, max_iters=4, val_interval=100)
    cfg['default_hooks']['checkpoint'] = dict(
        type='SafeCheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=1
    )
    return cfg


def _last(work_dir) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


@pytest.mark.parametrize(
    'code,where',
    [(errno.ENOSPC, 'write'), (errno.EROFS, 'write'), (errno.ENOSPC, 'pointer')],
    ids=['disk full while writing', 'read-only while writing', 'disk full at last_checkpoint'],
)
def test_disk_error_while_saving_then_resume(tmp_path, monkeypatch, code, where) -> None:
    put, commit = LocalBackend.put, ckpt_mod.commit_file
    saves = [0]

    def failing_put(self, obj, filepath):
        saves[0] += 1
        if where == 'write' and saves[0] == 2:  # iter_4: half the bytes fit, then the error
            with open(filepath, 'wb') as f:
                f.write(obj[: len(obj) // 2])
            raise OSError(code, osp.basename(filepath))
        put(self, obj, filepath)

    def failing_commit(tmp, path):  # write_text_atomic's fsync + rename of last_checkpoint
        with open(tmp) as f:
            if where == 'pointer' and f.read().endswith('iter_4.pth'):
                raise OSError(code, tmp)
        commit(tmp, path)

    monkeypatch.setattr(LocalBackend, 'put', failing_put)
    monkeypatch.setattr(ckpt_mod, 'commit_file', failing_commit)
    with pytest.raises(CheckpointSaveError) as raised:
        Runner.from_cfg(Config(_cfg(str(tmp_path)))).train()
    monkeypatch.undo()

    msg = str(raised.value)
    free = shutil.disk_usage(tmp_path).free
    assert f'to {tmp_path} ({__import__("os").strerror(code)};' in msg
    assert ' free of ' in msg and ckpt_mod._size(free).split()[1] in msg
    assert f'previous checkpoint {tmp_path / "iter_2.pth"}' in msg and '--resume' in msg
    assert isinstance(raised.value, OSError)  # the tools print it as one `error:` line

    # The previous checkpoint is intact and named by last_checkpoint; nothing partial is left.
    assert _last(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert load_checkpoint_file(str(tmp_path / 'iter_2.pth'))['meta']['iter'] == 2
    assert not glob.glob(f'{tmp_path}/*.tmp') and not glob.glob(f'{tmp_path}/*/*.tmp')
    if where == 'write':
        assert not (tmp_path / 'iter_4.pth').exists()

    cfg = _cfg(str(tmp_path))
    cfg.update(resume=True, load_from=None)  # tools/train.py --resume, once there is room
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert runner.iter == 4
    assert _last(tmp_path) == str(tmp_path / 'iter_4.pth')
    assert [osp.basename(p) for p in glob.glob(f'{tmp_path}/iter_*')] == ['iter_4.pth']


def test_save_failure_without_an_earlier_checkpoint(tmp_path) -> None:
    err = save_failure(OSError(errno.EDQUOT, 'x'), str(tmp_path / 'iter_2.pth'), None)
    assert 'Cannot write checkpoint iter_2.pth to' in str(err) and 'free of' in str(err)
    assert 'No earlier checkpoint was written' in str(err) and err.errno == errno.EDQUOT


def test_other_save_errors_are_not_renamed(tmp_path, monkeypatch) -> None:
    def broken(self, obj, filepath):
        raise OSError(errno.EIO, 'I/O error')

    monkeypatch.setattr(LocalBackend, 'put', broken)
    with pytest.raises(OSError) as raised:
        Runner.from_cfg(Config(_cfg(str(tmp_path)))).train()
    assert not isinstance(raised.value, CheckpointSaveError)
