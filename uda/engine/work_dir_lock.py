"""One work folder, one run: a lock file that names the run holding the folder.

Two ``tools/train.py`` runs on one work folder would interleave their checkpoints, logs and
``last_checkpoint``, and a later ``--resume`` would continue whichever wrote last. The lock is
``WORK_DIR/.uda.lock``, a small JSON file (pid, host, start time, the process's own start time
from ``/proc`` where it exists, the command line) created with ``O_CREAT | O_EXCL``, so of two
runs started at once exactly one gets it. It is removed when the run ends (normally, by an
exception, by SIGTERM or Ctrl-C). A lock left by a killed run (``kill -9``, a power loss) names
a process that no longer exists on this host: the next run takes it over with a warning, so
``--resume`` after a crash needs nothing by hand. A lock of another host cannot be checked and
stops the run with the command that removes it.

Standard library only, so that the lock is taken before torch and mmengine are imported by
anything that needs it first.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import signal
import socket
import sys
import time
import warnings
from types import FrameType, TracebackType
from typing import Any, Optional

LOCK_NAME = '.uda.lock'


class WorkDirLockedError(RuntimeError):
    """The work folder is held by another live run; the message names it."""


def _proc_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field
    22), which tells a reused pid from the process that wrote a lock; None without /proc."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.rsplit(')', 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder_running(info: dict) -> bool:
    """Whether the process that wrote ``info`` still runs (on this host)."""
    pid = int(info.get('pid', -1))
    if pid <= 0 or not _alive(pid):
        return False
    written, now = info.get('proc_start'), _proc_start(pid)
    return written is None or now is None or written == now


def _describe(info: dict) -> str:
    started = info.get('started')
    when = (
        time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(float(started)))
        if isinstance(started, (int, float))
        else 'an unknown time'
    )
    command = info.get('command') or '?'
    return f'pid {info.get("pid")} on {info.get("host")}, started {when}: {command}'


class WorkDirLock:
    """Hold ``work_dir`` for this process (a context manager; :meth:`acquire` / :meth:`release`).

    Args:
        work_dir: The run's folder (created if missing).
        enabled: False makes the lock a no-op (the ranks > 0 of a distributed run).

    Raises:
        WorkDirLockedError: From :meth:`acquire` when a live run holds the folder, naming its
            pid, host, start time and command, or when a lock of another host cannot be
            checked.
    """

    def __init__(self, work_dir: str, enabled: bool = True) -> None:
        self.work_dir, self.enabled = work_dir, enabled
        self.path = osp.join(work_dir, LOCK_NAME)
        self.held = False
        self._old_sigterm: Any = None

    def _record(self) -> dict:
        return dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
            proc_start=_proc_start(os.getpid()),
            command=' '.join(sys.argv),
        )

    def _create(self) -> bool:
        """Write the lock if none exists; False when one does."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, 'w') as f:
            json.dump(self._record(), f)
        return True

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path) as f:
                info = json.load(f)
            return info if isinstance(info, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # a lock cut short by a crash while it was written

    def acquire(self) -> None:
        if not self.enabled:
            return
        os.makedirs(self.work_dir, exist_ok=True)
        for _ in range(3):  # a lock released or taken over between two of our steps: retry
            if self._create():
                self._hold()
                return
            info = self._read()
            if info is None:
                continue
            host = info.get('host')
            if info and host != socket.gethostname():
                raise WorkDirLockedError(
                    f'Work folder {self.work_dir} is held by another run ({_describe(info)}); '
                    'it runs on another host, so this one cannot check it. Use another '
                    f'--work-dir, or, if that run has ended, remove {self.path} and start again.'
                )
            if info and _holder_running(info):
                raise WorkDirLockedError(
                    f'Work folder {self.work_dir} is held by a running training '
                    f'({_describe(info)}). Wait for it to end or stop it (kill '
                    f'{info.get("pid")}), or use another --work-dir.'
                )
            # A stale lock: its process is gone (killed, crashed, the machine restarted).
            tmp = f'{self.path}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                json.dump(self._record(), f)
            os.replace(tmp, self.path)
            mine = self._read()
            if mine and mine.get('pid') == os.getpid():
                warnings.warn(
                    f'Took over the lock of {self.work_dir} from a run that no longer exists '
                    f'({_describe(info) if info else "an unreadable lock file"}); its '
                    'checkpoints are left as they are (continue it with --resume).',
                    stacklevel=2,
                )
                self._hold()
                return
        raise WorkDirLockedError(
            f'Work folder {self.work_dir} is being taken by another run at this moment; use '
            'another --work-dir or start again.'
        )

    def _hold(self) -> None:
        self.held = True
        # SIGTERM (torchrun, schedulers, `kill`) ends Python without running `finally`
        # blocks; turned into SystemExit, the lock is released on the way out.
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            try:
                self._old_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            except ValueError:  # not the main thread
                self._old_sigterm = None

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        info = self._read()
        if info and info.get('pid') == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def __enter__(self) -> 'WorkDirLock':
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()


def _exit_on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise SystemExit(128 + signum)


def work_dir_lock(work_dir: str) -> WorkDirLock:
    """The lock of a run's work folder for its main process; a no-op lock on the other ranks
    of a distributed run (``RANK`` > 0), which share rank 0's folder."""
    return WorkDirLock(work_dir, enabled=int(os.environ.get('RANK', '0') or 0) == 0)
