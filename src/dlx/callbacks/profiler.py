"""``trainer.profile=true``: a torch.profiler trace of a few training steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback

if TYPE_CHECKING:
    from dlx.engine.profile import StepProfiler
    from dlx.engine.run import Run
    from dlx.engine.state import StepResult


class Profiler(Callback):
    """Starts the profiler with the first epoch, steps it every step; it stops by itself."""

    def __init__(self) -> None:
        self.profiler: StepProfiler | None = None

    def on_fit_start(self, run: Run) -> None:
        from dlx.engine.profile import StepProfiler

        self.profiler = StepProfiler(run.run_dir, run.device, run.progress.print)

    def on_step_end(self, run: Run, result: StepResult) -> None:
        assert self.profiler is not None
        self.profiler.step()

    def on_interrupt(self, run: Run) -> None:
        self.on_fit_end(run)

    def on_fit_end(self, run: Run) -> None:
        if self.profiler is not None:
            self.profiler.stop()

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        self.on_fit_end(run)
