"""``trainer.fast_dev_run=true``: the whole run on one batch of each split, kept nowhere."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.engine.board import stderr_line

if TYPE_CHECKING:
    from dlx.engine.run import Run


class FastDevRun(Callback):
    """Says what the run is, and removes its checkpoints at the end: a smoke test of the
    code path (model, data, loop, logging), not a result to resume or evaluate."""

    def on_fit_start(self, run: Run) -> None:
        stderr_line(
            "fast_dev_run: 1 epoch of 1 train, 1 val and 1 test batch; checkpoints not kept"
        )

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        run.writer.wait()
        shutil.rmtree(run.run_dir / "checkpoints", ignore_errors=True)
