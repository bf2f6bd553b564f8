"""Who is training a run dir: an exclusive ``flock`` on ``RUN_DIR/.dlx.lock`` held by the
process that trains it, with its pid and host written inside.

The kernel drops the lock when that process dies, by any signal (SIGKILL, a lost node's
NFS lease), so a run without ``summary.json`` whose lock is free is ``dead``, never
``running`` forever; and a second process (a restarted sweep, a ``dlx resume``) never trains
a run that another is still training.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dlx.errors import UsageError

LOCK = ".dlx.lock"

#: lock files this process holds, by resolved run dir: a nested ``hold`` of the same dir
#: (a sweep trial, then its run) re-enters instead of blocking on its own lock
_held: dict[Path, int] = {}


def _owner(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return "another process"
    return f"pid {data.get('pid', '?')} on {data.get('host', '?')}"


@contextmanager
def hold(run_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the duration; wait up to ``wait_s`` for another holder to
    let go, then refuse (``UsageError`` naming the holder)."""
    key = Path(run_dir).resolve()
    if key in _held:
        yield
        return
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() >= deadline:
                owner = _owner(fd)
                os.close(fd)
                raise UsageError(
                    f"{run_dir}: being trained by {owner}; wait for it to end or stop it"
                ) from None
            time.sleep(0.2)
    stamp = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()})
    os.ftruncate(fd, 0)
    os.pwrite(fd, stamp.encode(), 0)
    _held[key] = fd
    try:
        yield
    finally:
        _held.pop(key, None)
        os.close(fd)  # closing the only descriptor releases the lock


def alive(run_dir: Path) -> bool | None:
    """Whether a process trains ``run_dir`` now: True (its lock is held), False (the lock is
    free: whoever trained it is gone), None (no lock file: a run from before locks, unknown)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
