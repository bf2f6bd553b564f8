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
those are set, and stops when the call returns.
"""

from __future__ import annotations

import os
import signal
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
#: set in the environment of the server and so of its workers
WORKER_ENV = "DLX_WARM_WORKER"
#: Hydra's flags that print or check instead of running the sweep
NOT_RUNNING = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "-sc"}


def parallel_workers(args: list[str], cpus: int) -> int:
    """How many joblib workers ``dlx train ARGS`` asks for (0: not a joblib sweep). Read from
    the command line, before Hydra composes: a launcher chosen in a config file is not seen
    here, and that sweep's workers start as loky starts them, each its own interpreter."""
    flags = set(args)
    if not {"-m", "--multirun"} & flags or NOT_RUNNING & flags or "--shell-completion" in flags:
        return 0
    if not any(a.lstrip("+") == LAUNCHER for a in args):
        return 0
    n_jobs = -1  # the joblib launcher's default: all cores
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        if key == "hydra.launcher.n_jobs":
            try:
                n_jobs = int(value)
            except ValueError:
                return 0  # Hydra reports it
    return cpus + 1 + n_jobs if n_jobs < 0 else n_jobs


@contextmanager
def forked_workers(args: list[str]) -> Iterator[None]:
    """For the call: a preloaded fork server, and loky's workers forked from it, when ARGS
    ask for a sweep on two joblib workers or more; otherwise nothing changes."""
    from dlx.sweep.guard import CHECK_ONLY_ENV

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = parallel_workers(args, cpus or 1)
    if workers < 2 or os.environ.get(CHECK_ONLY_ENV) == "1" or not _start_server(workers, cpus):
        yield
        return
    from joblib.externals.loky.backend import context

    before = context.get_start_method()
    context.set_start_method("forkserver", force=True)
    try:
        yield
    finally:
        context.set_start_method(before, force=True)
        _stop_server()


def _start_server(workers: int, cpus: int) -> bool:
    """Start the fork server, which imports in the background; False where it cannot start.

    Its environment holds the thread limits joblib gives loky's workers (``cores // workers``
    for OpenMP, MKL, OpenBLAS … unless set): the libraries read them as the server imports."""
    from multiprocessing import forkserver

    from joblib._parallel_backends import LokyBackend

    limit = str(max(cpus // workers, 1))
    env = {v: os.environ.get(v, limit) for v in LokyBackend.MAX_NUM_THREADS_VARS}
    try:
        with _inherited({**env, WORKER_ENV: "1"}):
            forkserver.set_forkserver_preload(PRELOAD)
            forkserver.ensure_running()
    except (OSError, RuntimeError):  # no fork server here: loky starts its workers itself
        return False
    return True


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


def take_ctrl_c_back() -> None:
    """In a worker forked from the server: Ctrl-C raises ``KeyboardInterrupt`` again, as in
    any Python process (the server started with it ignored, and its forks inherit that)."""
    if os.environ.get(WORKER_ENV) and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stop_server() -> None:
    """Stop the workers, then the fork server at once: its interpreter's teardown would hold
    the command's output pipes open for about a second after the sweep."""
    from multiprocessing import forkserver

    from dlx.sweep.watchdog import stop_idle_workers

    stop_idle_workers()
    server = forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    server._stop()  # reaps it and forgets it: the next call starts a fresh one
