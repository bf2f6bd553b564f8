"""What the Hydra app behind ``dlx train`` reports back to the CLI that started it.

The CLI makes a folder and names it in ``DLX_OUTCOME_DIR``; each writer puts its own file
there: the single run its summary (``run.json``), a sweep trial that met bad usage its error
(``usage-<job>.json``), a trial stopped by a signal the signal (``interrupted.json``), the end
of a sweep its counts (``sweep.json``). Trials that a launcher runs in other processes
inherit the variable, so they report too. Outside the CLI nothing is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlx.engine.checkpoint import write_json
from dlx.sweep.watchdog import ENV as SWEEP_PID_ENV

ENV = "DLX_OUTCOME_DIR"


def report(name: str, data: dict[str, Any]) -> None:
    """Write ``data`` as ``name`` in the folder the CLI named (nothing if none)."""
    folder = os.environ.get(ENV)
    if folder:
        write_json(Path(folder) / name, data)


#: named in the folder by the main process's first Ctrl-C: no trial starts after it
STOP = "stop"


@contextmanager
def training(job: int) -> Iterator[None]:
    """While sweep trial ``job`` trains: ``training-<job>.json`` (its pid, since when) in the
    CLI's folder."""
    folder = os.environ.get(ENV)
    if not folder or os.environ.get(SWEEP_PID_ENV) == str(os.getpid()):  # the main's own
        yield
        return
    path = Path(folder) / f"training-{job}.json"
    write_json(path, {"pid": os.getpid(), "t": time.time()})
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def training_pids(folder: Path) -> dict[int, float]:
    """The processes that train a trial now: pid -> since when (``training``'s files)."""
    out = {}
    for path in folder.glob("training-*.json"):
        try:
            record = json.loads(path.read_text())
            out[int(record["pid"])] = float(record["t"])
        except (OSError, ValueError, KeyError):  # it ended meanwhile
            continue
    return out


def request_stop(folder: Path) -> None:
    """Name the stop in ``folder``: the sweep's trials that have not started do not."""
    (folder / STOP).touch()


def stop_requested() -> bool:
    """Whether the sweep this process works for was stopped (no new trial starts)."""
    folder = os.environ.get(ENV)
    return bool(folder) and (Path(folder) / STOP).exists()


@dataclass
class Outcome:
    """Everything reported during one ``dlx train`` call."""

    run: dict[str, Any] | None = None  # the single run's summary
    sweep: dict[str, Any] | None = None  # succeeded, trials, sweep_dir
    usage_errors: list[str] = field(default_factory=list)
    signal: str | None = None  # a sweep stopped by Ctrl-C / SIGTERM

    @classmethod
    def read(cls, folder: Path) -> Outcome:
        def load(name: str) -> dict[str, Any] | None:
            path = folder / name
            return json.loads(path.read_text()) if path.is_file() else None

        errors = [json.loads(p.read_text())["error"] for p in sorted(folder.glob("usage-*.json"))]
        stopped = load("interrupted.json")
        return cls(load("run.json"), load("sweep.json"), errors, stopped and stopped["signal"])


@contextmanager
def collecting() -> Iterator[Path]:
    """A fresh report folder named in the environment for the duration, then removed."""
    folder = Path(tempfile.mkdtemp(prefix="dlx-outcome-"))
    before = os.environ.get(ENV)
    os.environ[ENV] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        shutil.rmtree(folder, ignore_errors=True)
