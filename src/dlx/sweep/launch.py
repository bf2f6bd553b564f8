"""``dlx train``: the Hydra app run on the command's arguments, and the exit code of what it
reported (``dlx.sweep.outcome``). Shared by the CLI and ``dlx study``."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dlx.errors import RunFailed, Signalled, UsageError
from dlx.status import BROKEN, SUCCEEDED, Status

#: exit codes by final run status (SPEC)
EXIT = {**dict.fromkeys(SUCCEEDED, 0), Status.PRUNED: 0, **dict.fromkeys(BROKEN, 1)}
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}  # 128 + the signal


def exit_code(summary: dict) -> int:
    """The exit code of a run that ended as ``summary`` says."""
    if summary.get("status") == Status.INTERRUPTED:
        return SIGNAL_EXIT.get(summary.get("signal", "SIGINT"), 130)
    return EXIT.get(summary.get("status", Status.FAILED), 1)


def finished(summary: dict, run_dir: object = None) -> int:
    """Say why a run failed (one line, naming its run dir), and its exit code."""
    if summary.get("error") and summary.get("status") in BROKEN:
        where = run_dir or summary.get("run_dir")
        line = f"{summary['status']}: {summary['error']}" + (f"; run dir: {where}" if where else "")
        print(line, file=sys.stderr, flush=True)
    return exit_code(summary)


@contextmanager
def _hydra_logging() -> Iterator[None]:
    """Hydra's job logging lasts one call: the handlers it installs (bound to this call's
    streams and run dir) are closed after it, so a later in-process call (a study's next
    round, ``dlx resume``) never writes to a closed stream or another run's train.log."""
    import logging

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()


def train(args: list[str]) -> int:
    """``dlx train ARGS``: Hydra runs the task (one run or a sweep); the exit code."""
    from dlx.sweep import ctrl_c, warm, watchdog
    from dlx.sweep.outcome import Outcome, collecting

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises; we print one line instead
    watchdog.mark_main()  # a sweep's launcher workers stop when this process dies
    ctrl_c.note()  # and act on Ctrl-C as this process does
    # the environment is set for the workers: their fork server starts before Hydra's imports
    with collecting() as folder, warm.forked_workers(args), _hydra_logging():
        from hydra.core.global_hydra import GlobalHydra

        from dlx.sweep import app
        from dlx.sweep.compose import hydra_error_line
        from dlx.sweep.guard import Checked, Refused

        sys.argv = ["dlx", *args]
        GlobalHydra.instance().clear()  # a fresh composition on every call (in-process callers)
        try:
            with ctrl_c.patient(folder):
                app.train()
        except (UsageError, RunFailed):
            raise
        except Refused as e:  # the config or the run dir, before the run dir was made
            raise UsageError(str(e)) from None
        except Checked:  # dlx check: the config passed
            print("config ok: dlx train would start a run with it")
            return 0
        except KeyboardInterrupt as e:  # a sweep stopped by a signal, or a second Ctrl-C
            print("interrupted", file=sys.stderr)
            own = signal.Signals(e.signum).name if isinstance(e, Signalled) else "SIGINT"
            return SIGNAL_EXIT.get(Outcome.read(folder).signal or own, 130)
        except Exception as e:
            line = hydra_error_line(e, args)
            if line is None:
                raise
            raise UsageError(line) from None
        result = Outcome.read(folder)
    if result.sweep is not None:  # a sweep: 0 when a trial succeeded
        if not result.sweep["succeeded"] and result.usage_errors:
            raise UsageError(result.usage_errors[-1])  # every trial failed on bad usage
        return 0 if result.sweep["succeeded"] else 1
    if result.usage_errors:
        raise UsageError(result.usage_errors[-1])
    if result.run is None:  # --help, --cfg job, shell completion …
        return 0
    return finished(result.run)
