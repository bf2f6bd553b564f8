"""The terminal: a progress bar that moves every step, epoch lines, the end-of-run table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.engine.board import summary_table
from dlx.status import SUCCEEDED

if TYPE_CHECKING:
    from dlx.engine.run import Run
    from dlx.engine.state import StepResult

#: seconds between redraws of the bar's count (counting a step is free; drawing is not)
REDRAW_S = 0.1


class ProgressBar(Callback):
    """Drives ``run.progress``; ``table``: print the summary table when the run succeeds."""

    def __init__(self, table: bool = True) -> None:
        self.table = table
        self.seen = 0  # the epoch's steps done, as the loop counts them
        self.drawn = 0.0

    def on_fit_start(self, run: Run) -> None:
        run.progress.announce(run.run_dir)

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        run.progress.start_epoch(
            epoch, run.trainer.max_epochs, run.steps_per_epoch, done=run.state.batch
        )
        self.seen, self.drawn = run.state.batch, time.monotonic()

    def on_step_end(self, run: Run, result: StepResult) -> None:
        self.seen = run.state.batch
        now = time.monotonic()
        if now - self.drawn >= REDRAW_S:
            run.progress.set_done(self.seen)
            self.drawn = now

    def on_log(self, run: Run, scalars: dict[str, float]) -> None:
        run.progress.set_done(run.state.batch)  # the logged step counted (before on_step_end)
        shown = {"loss": scalars["train/loss"], "lr": scalars["opt/lr"]}
        run.progress.show({**shown, "samples/s": scalars["perf/samples_per_s"]})

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        run.progress.set_done(self.seen)
        run.progress.end_epoch(metrics)

    def on_interrupt(self, run: Run) -> None:
        run.progress.stop()

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        run.progress.stop()
        run.progress.finish(summary["status"], run.run_dir, summary.get("error"))
        if self.table and summary["status"] in SUCCEEDED:
            run.progress.print(summary_table(summary, run.run_dir))
