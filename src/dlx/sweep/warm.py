"""Parallel trials start warm: the workers of a ``hydra/launcher=joblib`` sweep fork from a
process that has already imported what a trial needs.

Joblib's loky workers start as fresh interpreters, and each one imported torch, torch's
compiler front end (``torch.optim`` pulls it in on its first optimizer), the engine, the
model and data registries and TensorBoard before its first trial: about 2.5 s of CPU a
worker. Here ``dlx train`` starts a fork server (Python's ``multiprocessing.forkserver``)
that imports them once, while Hydra composes the sweep in the main process, and loky forks
each worker from it. The server only imports: no torch thread pool or CUDA context exists
to be copied into a fork.

A worker inherits the environment of the command when the server started (the sweep's pid
for the watchdog, the outcome folder): the server starts inside ``dlx train``'s call, once
those are set, and stops when the call returns. It starts with Ctrl-C ignored, and so do its
workers: ``dlx.sweep.ctrl_c`` gives it to them during their trials. Linux only: on macOS a
fork after Apple's frameworks have loaded is not safe, and Python spawns there.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

#: what a trial imports, loaded once in the fork server
PRELOAD = [
    "dlx.sweep.app",
    "dlx.engine.loop",
    "torch._dynamo",
    "torch.utils.tensorboard",
    "dlx.models",
    "dlx.data",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher",
]
LAUNCHER = "hydra/launcher=joblib"
N_JOBS = "hydra.launcher.n_jobs"
#: Hydra's flags that print or check instead of running the sweep
NOT_RUNNING = {"--help", "-h", "--hydra-help", "--version", "--info", "-i", "--cfg", "-c", "-sc"}


def workers_of(n_jobs: int, cpus: int) -> int:
    """The processes joblib's ``n_jobs`` means on ``cpus`` cores (-1 all, -2 all but one …)."""
    return cpus + 1 + n_jobs if n_jobs < 0 else n_jobs


def parallel_workers(args: list[str], cpus: int) -> int:
    """How many joblib workers ``dlx train ARGS`` asks for (0: not a joblib sweep). Read from
    the command line, before Hydra composes: a launcher chosen in a config file is not seen
    here, and that sweep's workers start as loky starts them, each its own interpreter."""
    flags = set(args)
    if not {"-m", "--multirun"} & flags or NOT_RUNNING & flags or "--shell-completion" in flags:
        return 0
    if not any(a.lstrip("+") == LAUNCHER for a in args):
        return 0
    typed = _typed(args, N_JOBS)
    try:
        n_jobs = -1 if typed is None else int(typed)  # the launcher's default: all cores
    except ValueError:
        return 0  # Hydra reports it
    return workers_of(n_jobs, cpus)


@contextmanager
def forked_workers(args: list[str]) -> Iterator[None]:
    """For the call: a preloaded fork server, and loky's workers forked from it, when ARGS
    ask for a sweep on two joblib workers or more (on Linux); otherwise nothing changes."""
    from dlx.sweep.guard import CHECK_ONLY_ENV

    if not parallel_workers(args, 2) or os.environ.get(CHECK_ONLY_ENV) == "1":
        yield  # not a joblib sweep: nothing imported for it
        return
    import joblib.externals.loky as loky

    cpus = loky.cpu_count()  # as joblib counts them: CPU quotas and affinity included
    workers = parallel_workers(args, cpus)
    if workers < 2 or sys.platform != "linux":
        yield
        return
    threads = max(cpus // workers, 1) if _typed(args, N_JOBS) is not None else None
    pid = _start_server(threads)
    if pid is None:
        yield
        return
    from joblib.externals.loky.backend import context

    before = context.get_start_method()
    context.set_start_method("forkserver", force=True)
    try:
        yield
    finally:
        context.set_start_method(before, force=True)
        _stop_server(pid)


def _typed(args: list[str], key: str) -> str | None:
    """The value of the last ``key=value`` in ``args`` (None: not typed)."""
    values = [v for k, _, v in (a.lstrip("+").partition("=") for a in args) if k == key]
    return values[-1] if values else None


def _start_server(threads: int | None) -> int | None:
    """Start the fork server, which imports in the background: its pid, or None where none
    can start or another one runs already (this process's, not dlx's: left alone).

    With ``threads`` its environment holds the limits joblib gives loky's workers (``cores //
    workers`` for OpenMP, MKL, OpenBLAS … unless set), which the libraries read as it imports;
    without (``n_jobs`` from a config file) each trial divides the cores (``configure_job``)."""
    from multiprocessing import forkserver

    from joblib._parallel_backends import LokyBackend

    server = forkserver._forkserver
    if getattr(server, "_forkserver_pid", None) is not None:
        return None
    limits = {} if threads is None else dict.fromkeys(LokyBackend.MAX_NUM_THREADS_VARS, threads)
    env = {v: os.environ.get(v, str(n)) for v, n in limits.items()}
    try:
        with _inherited(env):
            forkserver.set_forkserver_preload(PRELOAD)
            forkserver.ensure_running()
    except Exception:  # no fork server here: loky starts its workers itself
        return None
    return getattr(server, "_forkserver_pid", None)


@contextmanager
def _inherited(env: dict[str, str]) -> Iterator[None]:
    """What a process started meanwhile inherits: ``env`` in its environment, and Ctrl-C
    ignored (the server would die mid-import with a traceback; the command stops it)."""
    before = {v: os.environ.get(v) for v in env}
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    os.environ.update(env)
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
        for v, value in before.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def _stop_server(pid: int) -> None:
    """Stop the workers, then the fork server ``pid`` at once: its interpreter's teardown would
    hold the command's output pipes open for about a second after the sweep."""
    from multiprocessing import forkserver

    from dlx.sweep.watchdog import stop_idle_workers

    server = forkserver._forkserver
    try:
        stop_idle_workers()
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if getattr(server, "_forkserver_pid", None) == pid:
            server._stop()  # reaps it and forgets it: the next call starts a fresh one
