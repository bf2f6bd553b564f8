"""Ctrl-C on a sweep whose trials a launcher runs in worker processes (joblib's): every trial
under way saves and records itself, none starts after it, and the sweep stops.

The terminal's Ctrl-C reaches the whole process group. In a worker it acts during a trial (the
loop finishes the step, saves ``last.pt``, writes ``summary.json``) and is ignored between
trials: an idle worker that died of it would break loky's pool, which kills the workers still
saving. The main process, on the first Ctrl-C, names the stop in the CLI's outcome folder (so a
queued trial does not start), passes Ctrl-C on to a trial that started after it, and waits up to
``2 * GRACE_S`` for the trials to end before joblib stops its workers; a second Ctrl-C stops
at once. Trials the main process runs itself handle Ctrl-C as they train: nothing changes there.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from dlx.sweep import outcome
from dlx.sweep.watchdog import ENV as SWEEP_PID_ENV
from dlx.sweep.watchdog import GRACE_S, POLL_S, start_time

#: "1" when Ctrl-C stops the sweep's main process (not ignored, as in a background job)
ENV = "DLX_SWEEP_CTRL_C"


def note() -> None:
    """In the sweep's main process: whether Ctrl-C is live here, for the workers it starts."""
    live = signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    os.environ[ENV] = "1" if live else "0"


@contextmanager
def in_trial() -> Iterator[None]:
    """In a launcher's worker: Ctrl-C raises ``KeyboardInterrupt`` during the trial (when it
    stops the main process too), and is ignored after it. Elsewhere nothing changes."""
    sweep = os.environ.get(SWEEP_PID_ENV)
    if not sweep or sweep == str(os.getpid()):
        yield
        return
    live = os.environ.get(ENV) == "1"
    signal.signal(signal.SIGINT, signal.default_int_handler if live else signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def patient(folder: Path) -> Iterator[None]:
    """For a sweep's call in the main process: the first Ctrl-C waits for the trials other
    processes train (their ``training-*.json`` in ``folder``) before it stops the sweep."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # ignored (a background job), or someone else's handler: theirs
        return
    asked: list[int] = []

    def on_ctrl_c(signum: int, frame: object) -> None:
        if not asked:
            asked.append(signum)
            _wait_for_trials(folder)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _wait_for_trials(folder: Path) -> None:
    """Stop new trials, tell the ones that started after the Ctrl-C, and wait for all."""
    asked_at = time.time()
    outcome.request_stop(folder)
    told = {pid for pid, since in _training(folder).items() if since <= asked_at}
    deadline = time.monotonic() + 2 * GRACE_S
    while (pids := _training(folder)) and time.monotonic() < deadline:
        for pid in pids.keys() - told:  # it started after the terminal's Ctrl-C
            with suppress(ProcessLookupError, PermissionError):  # it ended meanwhile
                os.kill(pid, signal.SIGINT)
            told.add(pid)
        time.sleep(POLL_S / 5)


def _training(folder: Path) -> dict[int, float]:
    """The live processes, other than this one, that train a trial now: pid -> since when."""
    pids = outcome.training_pids(folder).items()
    return {p: t for p, t in pids if p != os.getpid() and start_time(p)}
