"""``metrics.csv``: one row per finished epoch, for programs (``dlx report``, pandas).

Columns: ``epoch``, ``step``, ``time_s`` (training wall seconds so far, across resumes) and
every epoch metric (``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``opt/lr`` …).
Each epoch rewrites the file atomically, on the checkpoint writer's thread and before that
epoch's checkpoint, so a crash never leaves half a row; a resume first drops the rows of
epochs its checkpoint does not hold, so every epoch appears exactly once.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dlx.callbacks import Callback
from dlx.engine.checkpoint import atomic_write

if TYPE_CHECKING:
    from dlx.engine.run import Run

FILE = "metrics.csv"
FIRST = ("epoch", "step", "time_s")


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``metrics.csv`` (none if it is missing)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class MetricsCSV(Callback):
    """Writes ``run_dir/metrics.csv`` at every epoch end (rank 0)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | int]] = []
        self.started = 0.0
        self.before = 0.0  # training seconds of earlier sessions of this run

    def on_fit_start(self, run: Run) -> None:
        path = run.run_dir / FILE
        kept = [r for r in read_rows(path) if int(r["epoch"]) <= run.state.epoch]
        self.rows = [{k: _number(v) for k, v in r.items() if v != ""} for r in kept]
        self.before = float(self.rows[-1]["time_s"]) if self.rows else 0.0
        self.started = time.monotonic()
        if run.resumed and path.is_file():
            self._write(run, path)  # a resume forgets the epochs after its checkpoint

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        elapsed = self.before + time.monotonic() - self.started
        row = {"epoch": run.state.epoch, "step": run.state.step, "time_s": round(elapsed, 3)}
        row.update(metrics)
        row["opt/lr"] = run.epoch_lr  # the epoch's own, before an epoch-wise schedule moves it
        self.rows.append(row)
        self._write(run, run.run_dir / FILE)

    def _write(self, run: Run, path: Path) -> None:
        columns = list(FIRST)
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        text = out.getvalue().encode()
        run.writer.call(lambda: atomic_write(path, lambda f: f.write(text)))


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value
