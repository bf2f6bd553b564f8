"""``regularization=[early_stopping]``: end the run when the monitored metric stops improving."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.regularization import EarlyStopping
from dlx.status import Status

if TYPE_CHECKING:
    from dlx.engine.run import Run


class EarlyStop(Callback):
    """Asks the loop to stop after ``patience`` epochs in a row without improvement. Runs on
    every rank (they see rank 0's figures, so they agree); its count is checkpointed."""

    every_rank = True
    state_key = "early_stopping"

    def __init__(self, rule: EarlyStopping) -> None:
        self.rule = rule

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        cfg = self.rule.cfg
        if self.rule.step(metrics):
            run.request_stop(
                Status.STOPPED_EARLY, f"{cfg.monitor} did not improve for {cfg.patience} epochs"
            )

    def state_dict(self) -> dict[str, Any]:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)
