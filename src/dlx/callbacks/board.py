"""TensorBoard: the config and HParams at the start, step and epoch scalars, test figures,
histograms, and the HParams session's end status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.engine.board import flatten
from dlx.engine.optstats import histograms

if TYPE_CHECKING:
    from dlx.engine.run import Run


class TensorBoardLogger(Callback):
    """Writes to ``run.board`` (rank 0's event file in the run dir)."""

    def on_fit_start(self, run: Run) -> None:
        from dlx.augment.preview import log_preview

        run.board.hparams_start(flatten(run.spec.config))
        if not run.resumed:
            run.board.text("config", "```yaml\n" + run.spec.yaml + "\n```")
            if run.spec.augment:
                log_preview(run.board, run.data, run.augment, run.trainer.seed)

    def on_log(self, run: Run, scalars: dict[str, float]) -> None:
        run.board.scalars(scalars, run.state.step)

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        # step-level train/loss is logged on log steps; the epoch's mean is train/loss_epoch
        tags = {("train/loss_epoch" if k == "train/loss" else k): v for k, v in metrics.items()}
        if run.trainer.on_nonfinite == "skip":
            tags["train/skipped_steps"] = float(run.state.skipped)
        run.board.scalars({**tags, "epoch": float(run.state.epoch)}, run.state.step)
        every = run.trainer.histogram_every_n_epochs
        if every and run.state.epoch % every == 0:
            run.board.histograms(histograms(run.model), run.state.step)

    def on_test_end(self, run: Run, metrics: dict[str, float]) -> None:
        run.board.scalars(metrics, run.state.step)

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        try:
            run.board.hparams_end(summary["status"])
        finally:
            run.board.close()
