"""Pruning: a trial of dlx's Optuna sweeper reports ``trainer.monitor`` to its Optuna trial at
every epoch end (the step is the epoch, 1-based) and stops with status ``pruned`` when the
study's pruner (``hydra.sweeper.pruner``) says so; its metrics are those trained so far. The
last epoch is reported but not judged: nothing is left to save, and the trial is tested."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dlx.callbacks import Callback

if TYPE_CHECKING:
    import optuna

    from dlx.core import Run


class Pruning(Callback):
    """Reports each epoch's monitored value; asks the pruner whether to go on."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        from hydra_plugins.dlx_optuna_sweeper.study import STATUS

        monitor = run.trainer.monitor
        value = metrics.get(monitor)
        if value is None or not math.isfinite(value):
            return  # a diverged epoch: the run stops on its own
        epoch = run.state.epoch
        if (
            epoch
            not in self.trial.study._storage.get_trial(self.trial._trial_id).intermediate_values
        ):
            self.trial.report(float(value), epoch)  # a resumed trial reports each epoch once
        if epoch < run.trainer.max_epochs and self.trial.should_prune():  # the last: done
            self.trial.set_user_attr(STATUS, "pruned")
            pruner = type(self.trial.study.pruner).__name__
            run.request_stop(
                "pruned",
                f"{pruner} pruned trial {self.trial.number} at epoch {epoch}: "
                f"{monitor} {value:.4g}",
            )


def pruning_callback(run: Run) -> Callback | None:
    """The pruning callback when this run is a trial of dlx's Optuna sweeper, else None."""
    from hydra_plugins.dlx_optuna_sweeper.study import job_trial

    trial = job_trial()
    return Pruning(trial) if trial is not None else None
