"""How a run ends: one enum, used by the loop, the sweep, the reports and the CLI.

A status is a ``str`` (``Status.COMPLETED == "completed"``), so summary.json, sweep.json and
every comparison with a string read from a file keep working. A new status is one member here
and, where it belongs, one entry in the groups below (and in ``HPARAMS_STATUS`` of
``dlx.engine.board``, ``EXIT`` of ``dlx.sweep.launch``).
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    COMPLETED = "completed"  # every epoch trained, the best checkpoint tested
    STOPPED_EARLY = "stopped_early"  # early stopping ended it, then the test
    DIVERGED = "diverged"  # a non-finite loss (trainer.on_nonfinite=stop)
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM: last.pt saved, ``dlx resume`` continues
    FAILED = "failed"  # an error: error.log and the summary's ``error``
    PRUNED = "pruned"  # a sweep's pruner stopped the trial
    RUNNING = "running"  # no summary.json yet
    DEAD = "dead"  # no summary.json and no process holds its lock (SIGKILL, a lost node)


#: a success: the run is over and its figures stand (a resume leaves it alone)
SUCCEEDED = (Status.COMPLETED, Status.STOPPED_EARLY)
#: broken runs: the other ranks are stopped, the sweep's trial fails
BROKEN = (Status.FAILED, Status.DIVERGED)
#: a trial that will not change any more
FINAL = (*SUCCEEDED, Status.DIVERGED, Status.FAILED, Status.PRUNED)
#: runs whose figures count in a report's means (a run still training shows what it has)
COUNTED = (*SUCCEEDED, Status.PRUNED, Status.RUNNING, Status.INTERRUPTED)
