"""Checkpoints: ``best.pt`` when the monitored metric improves, ``last.pt`` every epoch (and
every ``trainer.checkpoint_every_n_steps``), ``last.pt`` on Ctrl-C / SIGTERM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.callbacks import Callback
from dlx.log import stderr_line

if TYPE_CHECKING:
    from dlx.core import Run
    from dlx.steps import StepResult


class Checkpointing(Callback):
    """Saving is a collective under DDP (the epoch's sums are summed over ranks): every rank
    calls it at the same points, rank 0 writes. Comes last in the list, so the files carry
    every other callback's state after its epoch-end work."""

    every_rank = True

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every = every_n_steps

    def on_step_end(self, run: Run, result: StepResult) -> None:
        if self.every is not None and run.state.step % self.every == 0:
            run.save("last.pt")

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        if run.state.best_epoch != run.state.epoch:
            run.save("last.pt")
        elif run.eval_model is run.compiled:  # best and last are the same moment: one write
            run.save("best.pt", copy_to="last.pt")
        else:  # best.pt holds the weights validation measured (an EMA's)
            run.save("best.pt", run.eval_model.state_dict())
            run.save("last.pt")

    def on_interrupt(self, run: Run) -> None:
        run.save("last.pt")  # mid-epoch state: a resume redoes nothing and skips nothing
        if run.ctx.main:
            stderr_line(f"interrupted: checkpoint saved; continue with: dlx resume {run.run_dir}")
