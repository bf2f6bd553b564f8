"""A sweep dies whole: a trial running in a launcher's worker process (joblib/loky,
submitit's local executor) stops within seconds when the sweep's main process dies, by any
signal, SIGKILL included.

``dlx train`` names its own pid in ``DLX_SWEEP_PID``; launchers' workers inherit it. A trial
in another process starts a daemon thread that polls that pid (its ``/proc`` start time, so
a re-used pid or a zombie counts as gone). When it is gone the worker gets SIGTERM — the
trial saves ``last.pt`` and ends ``interrupted``, as on Ctrl-C — and ``GRACE_S`` later it
leaves at once. (``PR_SET_PDEATHSIG`` would not do: a loky worker's parent is the pool's
manager, and the death signal follows the thread that forked, not the process.)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

ENV = "DLX_SWEEP_PID"
#: seconds between polls, and from SIGTERM to a forced exit
POLL_S = 0.5
GRACE_S = 5.0
NAME = "dlx-sweep-watchdog"


def mark_main() -> None:
    """Name this process as the sweep's main one, for the workers it starts."""
    os.environ[ENV] = str(os.getpid())


def start_time(pid: int) -> str | None:
    """The process's start time (``/proc/PID/stat`` field 22); None when it is gone or a
    zombie; ``"?"`` where there is no ``/proc`` and the pid answers a signal."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _watch(pid: int, born: str) -> None:
    while start_time(pid) == born:
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # the trial saves and ends `interrupted`
    time.sleep(GRACE_S)
    os._exit(128 + signal.SIGTERM)


def watch_main() -> None:
    """In a launcher's worker: stop this process when the sweep's main process is gone
    (once per process; nothing in the main process itself)."""
    pid = int(os.environ.get(ENV) or 0)
    if not pid or pid == os.getpid() or any(t.name == NAME for t in threading.enumerate()):
        return
    born = start_time(pid)
    if born is None:  # already gone
        os.kill(os.getpid(), signal.SIGTERM)
        return
    threading.Thread(target=_watch, args=(pid, born), name=NAME, daemon=True).start()


def stop_idle_workers() -> None:
    """A finished sweep's joblib (loky) workers, idle and holding nothing, are stopped at once,
    rather than each going through Python's teardown (about a second with torch loaded)
    while the sweep's exit waits for them."""
    pool = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(pool, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
