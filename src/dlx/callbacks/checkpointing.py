"""Checkpoints: ``best.pt`` of the epoch the monitored metric was best at, ``last.pt`` of the
latest epoch end (and every ``trainer.checkpoint_every_n_steps``), ``last.pt`` on Ctrl-C /
SIGTERM.

Files are written at an epoch's end when ``trainer.checkpoint_interval_s`` has passed since
the last write (0: every epoch), and always at the run's last epoch, at a stop request and on
Ctrl-C. An epoch that improves in between is held in memory (its tensors copied) until then:
serialising a checkpoint is CPU work no thread can hide, and epochs of a fraction of a second
would otherwise pay it every time. A process killed outright loses at most that interval.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlx import checkpoint
from dlx.callbacks import Callback
from dlx.log import stderr_line
from dlx.state import test_kill_due

if TYPE_CHECKING:
    from dlx.core import Run
    from dlx.steps import StepResult


class Checkpointing(Callback):
    """Saving is a collective under DDP (the epoch's sums are summed over ranks): every rank
    calls it at the same points, rank 0 writes, and every epoch writes (the ranks' clocks
    would not agree on when the interval is up). Comes last in the list, so the files carry
    every other callback's state after its epoch-end work."""

    every_rank = True

    def __init__(self, every_n_steps: int | None = None, interval_s: float = 0.0) -> None:
        self.every = every_n_steps
        self.interval = interval_s
        self.written = float("-inf")  # time.monotonic() of the last epoch-end write
        self.best: dict[str, Any] | None = None  # best.pt while its write waits (rank 0)

    def on_step_end(self, run: Run, result: StepResult) -> None:
        if self.every is not None and run.state.step % self.every == 0:
            run.save("last.pt")

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        improved = run.state.best_epoch == run.state.epoch
        ema = run.eval_model is not run.compiled  # best.pt: the weights validation measured
        if not self.due(run):
            if improved:
                self.best = run.capture(run.eval_model.state_dict() if ema else None, hold=True)
            return
        self.written = time.monotonic()
        if not improved:
            self.flush_best(run)
            run.save("last.pt")
        elif not ema:  # best and last are the same moment: one write
            self.best = None
            run.save("best.pt", copy_to="last.pt")
        else:
            self.best = None
            run.save("best.pt", run.eval_model.state_dict())
            run.save("last.pt")

    def due(self, run: Run) -> bool:
        """Whether this epoch end writes: the interval is up, or training ends here."""
        return (
            time.monotonic() - self.written >= self.interval
            or run.ctx.enabled
            or run.stop_request is not None
            or run.state.epoch >= run.trainer.max_epochs
            or test_kill_due("last.pt", run.state.step)
        )

    def flush_best(self, run: Run) -> None:
        """Write the held best epoch, if one waits."""
        if self.best is not None:
            best, self.best = self.best, None
            run.write("best.pt", best)

    def on_interrupt(self, run: Run) -> None:
        self.flush_best(run)
        run.save("last.pt")  # mid-epoch state: a resume redoes nothing and skips nothing
        if run.ctx.main:
            stderr_line(f"interrupted: checkpoint saved; continue with: dlx resume {run.run_dir}")

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        """A run that failed between writes still leaves its best epoch on disk."""
        if self.best is not None:
            best, self.best = self.best, None
            checkpoint.save(run.run_dir / "checkpoints" / "best.pt", best)
