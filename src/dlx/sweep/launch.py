"""``dlx train``: the Hydra app run on the command's arguments, and the exit code of what it
reported (``dlx.sweep.outcome``). Shared by the CLI and ``dlx study``."""

from __future__ import annotations

import os
import sys

from dlx.errors import RunFailed, UsageError

#: exit codes by final run status (SPEC)
EXIT = {"completed": 0, "stopped_early": 0, "pruned": 0, "failed": 1, "diverged": 1}
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def exit_code(summary: dict) -> int:
    """The exit code of a run that ended as ``summary`` says."""
    if summary.get("status") == "interrupted":
        return SIGNAL_EXIT.get(summary.get("signal", "SIGINT"), 130)
    return EXIT.get(summary.get("status", "failed"), 1)


def finished(summary: dict, run_dir: object = None) -> int:
    """Say why a run failed (one line, naming its run dir), and its exit code."""
    if summary.get("error") and summary.get("status") in ("failed", "diverged"):
        where = run_dir or summary.get("run_dir")
        line = f"{summary['status']}: {summary['error']}" + (f"; run dir: {where}" if where else "")
        print(line, file=sys.stderr, flush=True)
    return exit_code(summary)


def train(args: list[str]) -> int:
    """``dlx train ARGS``: Hydra runs the task (one run or a sweep); the exit code."""
    from dlx.sweep.hydra_errors import hydra_error_line

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises; we print one line instead
    from hydra.core.global_hydra import GlobalHydra

    from dlx.sweep import app
    from dlx.sweep.outcome import Outcome, collecting

    sys.argv = ["dlx", *args]
    GlobalHydra.instance().clear()  # a fresh composition on every call (in-process callers)
    with collecting() as folder:
        try:
            app.train()
        except (UsageError, RunFailed):
            raise
        except KeyboardInterrupt:  # a sweep stopped by a signal, or a second Ctrl-C
            print("interrupted", file=sys.stderr)
            return SIGNAL_EXIT.get(Outcome.read(folder).signal or "SIGINT", 130)
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
