"""Errors that the CLI turns into exit codes and one-line messages."""

from __future__ import annotations


class UsageError(Exception):
    """Bad usage or config: the CLI prints one line and exits 2 (no traceback)."""

    exit_code = 2


class RunFailed(Exception):
    """The run failed in a way the user should see as one line; exit 1."""

    exit_code = 1


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside training (eval, report, a study's analysis): leave as Ctrl-C
    does; the CLI exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
