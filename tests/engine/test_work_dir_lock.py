"""One work folder, one run (issue 25, item 3): a second run on a held folder stops with an
error naming the first; the lock goes when its run ends (normally, by an exception, by
SIGTERM); a lock left by a killed run is taken over with a warning. Real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.test_bad_input_sweep import ROOT, _one_error, _tool, _toy_config
from uda.engine.work_dir_lock import LOCK_NAME, WorkDirLock, WorkDirLockedError

LOCK_PY = os.path.join(ROOT, 'uda', 'engine', 'work_dir_lock.py')

# The lock module needs only the standard library: loaded by its path, the helper processes
# start in milliseconds instead of importing torch.
LOAD = (
    'import importlib.util as u, sys; '
    "s = u.spec_from_file_location('lock', {path!r}); m = u.module_from_spec(s); "
    's.loader.exec_module(m); WorkDirLock = m.WorkDirLock\n'
)
HOLD = (
    LOAD
    + """
lock = WorkDirLock(sys.argv[1])
with lock:
    print('held', flush=True)
    sys.stdin.readline()  # hold until the test closes stdin (or kills this process)
    if len(sys.argv) > 2:
        raise RuntimeError('crash inside the run')
"""
)


def _holder(work, *extra):
    proc = subprocess.Popen(
        [sys.executable, '-c', HOLD.format(path=LOCK_PY), str(work), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    assert proc.stdout.readline().strip() == 'held', proc.stderr.read()
    return proc


def _try_lock(work):
    """Take and release the lock in another process; returns (exit code, stderr)."""
    code = LOAD.format(path=LOCK_PY) + f'with WorkDirLock({str(work)!r}): print("got it")'

    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def test_second_process_is_refused_then_lock_released_on_exit(tmp_path):
    work = tmp_path / 'run'
    holder = _holder(work)
    try:
        info = json.loads((work / LOCK_NAME).read_text())
        assert info['pid'] == holder.pid and info['host'] and info['started'] <= time.time()
        code, out = _try_lock(work)
        assert code != 0 and 'WorkDirLockedError' in out, out
        assert f'held by a running training (pid {holder.pid} on {info["host"]}' in out
        assert f'kill {holder.pid}' in out and '--work-dir' in out
    finally:
        holder.communicate('\n', timeout=60)  # a normal end
    assert holder.returncode == 0 and not (work / LOCK_NAME).exists()
    assert _try_lock(work) == (0, 'got it\n')


@pytest.mark.parametrize('end', ['exception', 'sigterm'])
def test_lock_released_on_crash_and_sigterm(tmp_path, end):
    work = tmp_path / 'run'
    holder = _holder(work, 'crash') if end == 'exception' else _holder(work)
    if end == 'exception':
        _, err = holder.communicate('\n', timeout=60)
        assert 'crash inside the run' in err
    else:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=60)
        assert holder.returncode == 128 + signal.SIGTERM
    assert not (work / LOCK_NAME).exists()


def test_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path):
    work = tmp_path / 'run'
    holder = _holder(work)
    holder.kill()  # kill -9: no clean-up runs, the lock stays
    holder.wait(timeout=60)
    assert json.loads((work / LOCK_NAME).read_text())['pid'] == holder.pid
    code, out = _try_lock(work)
    assert code == 0 and 'got it' in out
    assert f'Took over the lock of {work} from a run that no longer exists (pid {holder.pid}' in out
    assert not (work / LOCK_NAME).exists()


def test_reused_pid_and_other_host_and_unreadable_lock(tmp_path):
    import socket

    work = tmp_path / 'run'
    work.mkdir()
    lock = work / LOCK_NAME
    # This very process, but started at another time: the pid was reused, the lock is stale.
    lock.write_text(json.dumps(dict(pid=os.getpid(), host=socket.gethostname(), proc_start='1')))
    with pytest.warns(UserWarning, match=f'from a run that no longer exists .pid {os.getpid()}'):
        with WorkDirLock(str(work)):
            assert json.loads(lock.read_text())['proc_start'] != '1'
    lock.write_text(json.dumps(dict(pid=1, host='elsewhere', started=0.0, command='train.py x')))
    with pytest.raises(WorkDirLockedError, match=r'pid 1 on elsewhere.*another host.*remove '):
        WorkDirLock(str(work)).acquire()
    lock.write_text('{"pid": 12')  # cut short by a crash while written
    with pytest.warns(UserWarning, match='an unreadable lock file'), WorkDirLock(str(work)):
        pass
    assert not lock.exists()
    WorkDirLock(str(work), enabled=False).acquire()  # ranks > 0: nothing
    assert not lock.exists()


@pytest.mark.slow
def test_train_tool_refuses_a_held_work_dir(tmp_path):
    config = _toy_config(tmp_path)
    work = tmp_path / 'held'
    holder = _holder(work)
    try:
        out = _tool(tmp_path, os.path.join(ROOT, 'tools/train.py'), config, '--work-dir', str(work))
        msg = _one_error(out)
        assert f'Work folder {work} is held by a running training (pid {holder.pid}' in msg
    finally:
        holder.communicate('\n', timeout=60)
    assert not list(work.glob('*.pth'))
