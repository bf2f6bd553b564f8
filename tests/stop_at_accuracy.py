"""A user callback for ``test_recipes_learn``: end a recipe's run once it has clearly left
chance (``val/acc`` >= 0.4 on 64 validation digits; chance is 0.1), so a recipe that learns
costs only the epochs it needs to show it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.callbacks import Callback
from dlx.status import Status

if TYPE_CHECKING:
    from dlx.engine.run import Run

TARGET = 0.4


class StopAtAccuracy(Callback):
    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        if metrics.get("val/acc", 0.0) >= TARGET:
            run.request_stop(Status.STOPPED_EARLY, f"val/acc reached {TARGET}")
