"""Pruning: a trial of dlx's Optuna sweeper reports ``trainer.monitor`` to its Optuna trial at
every epoch end (the step is the epoch, 1-based) and stops with status ``pruned`` when the
study's pruner (``hydra.sweeper.pruner``) says so; its metrics are those trained so far. The
last epoch is reported but not judged: nothing is left to save, and the trial is tested.

Under DDP rank 0 (the Hydra job) alone holds the trial; every rank runs the callback and takes
rank 0's decision (one flag reduced per epoch), so the ranks stop together.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dlx.callbacks import Callback
from dlx.engine import distributed
from dlx.status import Status

if TYPE_CHECKING:
    import optuna

    from dlx.engine.run import Run


class Pruning(Callback):
    """Reports each epoch's monitored value; asks the pruner whether to go on."""

    every_rank = True

    def __init__(self, trial: optuna.Trial | None) -> None:
        self.trial = trial  # None on ranks other than 0

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        reason = self._judge(run, metrics)
        if distributed.any_rank(run.ctx, reason is not None, run.device):
            run.request_stop(Status.PRUNED, reason or "pruned by rank 0's pruner")

    def _judge(self, run: Run, metrics: dict[str, float]) -> str | None:
        """Report the epoch; why to stop now, or None to go on."""
        from hydra_plugins.dlx_optuna_sweeper.study import STATUS

        if self.trial is None:
            return None
        monitor = run.trainer.monitor
        value = metrics.get(monitor)
        if value is None or not math.isfinite(value):
            return None  # a diverged epoch: the run stops on its own
        epoch, trial = run.state.epoch, self.trial
        if epoch not in trial.study._storage.get_trial(trial._trial_id).intermediate_values:
            trial.report(float(value), epoch)  # a resumed trial reports each epoch once
        if epoch >= run.trainer.max_epochs or not trial.should_prune():
            return None
        trial.set_user_attr(STATUS, Status.PRUNED.value)
        pruner = type(trial.study.pruner).__name__
        return f"{pruner} pruned trial {trial.number} at epoch {epoch}: {monitor} {value:.4g}"


def pruning_callback(run: Run) -> Callback | None:
    """The pruning callback when this run is a trial of dlx's Optuna sweeper, else None.
    Under DDP every rank gets one (rank 0 alone knows whether it is a trial)."""
    from hydra_plugins.dlx_optuna_sweeper.study import job_trial

    trial = job_trial() if run.ctx.main else None
    if trial is None and not run.ctx.enabled:
        return None
    return Pruning(trial)
