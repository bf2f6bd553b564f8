"""Checkpoints: ``best.pt`` of the epoch the monitored metric was best at, ``last.pt`` of the
latest epoch end (and every ``trainer.checkpoint_every_n_steps``), ``last.pt`` on Ctrl-C /
SIGTERM.

Files are written at an epoch's end when ``trainer.checkpoint_interval_s`` has passed since
the last write (0: every epoch), and always at the run's last epoch, at a stop request and on
Ctrl-C. An epoch that improves in between is held in memory (its tensors copied) until then:
serialising a checkpoint is CPU work no thread can hide, and epochs of a fraction of a second
would otherwise pay it every time. A process killed outright resumes from its last write,
about one interval plus one epoch back at most. Every epoch writes under DDP (the ranks'
clocks would not agree on when the interval is up), with an EMA (``best.pt`` holds other
weights than ``last.pt``) and with ``trainer.save_top_k`` (its files and ``last.pt`` must
agree on which are kept).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.engine import checkpoint
from dlx.engine.board import stderr_line
from dlx.engine.state import test_kill_due

if TYPE_CHECKING:
    from dlx.engine.run import Run
    from dlx.engine.state import StepResult


class Checkpointing(Callback):
    """Saving is a collective under DDP (the epoch's sums are summed over ranks): every rank
    calls it at the same points, rank 0 writes. Comes last in the list, so the files carry
    every other callback's state after its epoch-end work."""

    every_rank = True

    def __init__(self, every_n_steps: int | None = None, interval_s: float = 0.0) -> None:
        self.every = every_n_steps
        self.interval = interval_s
        self.written = float("-inf")  # time.monotonic() of the last epoch-end write
        #: the best epoch's whole checkpoint while its write waits (rank 0): best.pt, and
        #: last.pt too should the run fail before the next write
        self.best: dict[str, Any] | None = None

    def on_step_end(self, run: Run, result: StepResult) -> None:
        if self.every is not None and run.state.step % self.every == 0:
            self.flush_best(run)  # a last.pt never names a best epoch best.pt does not hold
            run.save("last.pt")

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        improved = run.state.best_epoch == run.state.epoch
        ema = run.eval_model is not run.compiled  # best.pt: the weights validation measured
        if not self.due(run, ema):
            if improved:
                self.best = None  # one copy held at a time
                self.best = run.capture(hold=True)
            return
        self.written = time.monotonic()
        if not improved:
            self.flush_best(run)
            run.save("last.pt")
        elif not ema:  # best and last are the same moment: one write
            self.best = None
            run.save("best.pt", copy_to="last.pt")
        else:
            run.save("best.pt", run.eval_model.state_dict())
            run.save("last.pt")

    def due(self, run: Run, ema: bool) -> bool:
        """Whether this epoch end writes: the interval is up, training ends here, or the run
        is one that writes every epoch."""
        return (
            time.monotonic() - self.written >= self.interval
            or run.stop_request is not None
            or run.state.epoch >= run.trainer.max_epochs
            or run.ctx.enabled
            or ema
            or run.trainer.save_top_k > 0
            or test_kill_due("last.pt", run.state.step)
        )

    def flush_best(self, run: Run) -> None:
        """Write the held best epoch, if one waits."""
        if self.best is not None:
            run.write("best.pt", self.best)
            self.best = None

    def on_interrupt(self, run: Run) -> None:
        self.flush_best(run)
        run.save("last.pt")  # mid-epoch state: a resume redoes nothing and skips nothing
        if run.ctx.main:
            stderr_line(f"interrupted: checkpoint saved; continue with: dlx resume {run.run_dir}")

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        """A run that failed between writes still leaves its best epoch on disk, as
        ``best.pt`` and as ``last.pt`` (nothing was written after it was held): a resume
        starts from there, and the two files agree on which epoch was best."""
        if self.best is not None:
            folder = run.run_dir / "checkpoints"
            checkpoint.save(folder / "best.pt", self.best)
            checkpoint.copy(folder / "best.pt", folder / "last.pt")
            self.best = None
