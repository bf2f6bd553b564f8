"""Resuming a run from its ``last.pt``: every part, the counters, a stop it had been asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dlx.engine import checkpoint
from dlx.engine.state import StopRequest, restore

if TYPE_CHECKING:
    from dlx.engine.run import Run


def resume_run(run: Run, resume: bool) -> None:
    """Load ``last.pt`` into every part. Every rank loads rank 0's file; rank 0 carries the
    ranks' summed in-epoch meter and its own random streams, the others restart theirs (not
    bit-exact under DDP)."""
    last = run.run_dir / "checkpoints" / "last.pt"
    run.resumed = resume and last.exists()
    if run.resumed:
        parts = run.parts()
        if not run.ctx.main:
            parts.pop("augment")
        run.state = restore(checkpoint.load(last), parts, run.meter)
        if run.state.stop:  # the run had been asked to stop: it goes straight to its end
            run.stop_request = StopRequest(*run.state.stop)
        if not run.ctx.main:
            run.meter.reset()
    if run.ctx.enabled and not run.ctx.main:  # different dropout etc. per rank, reproducibly
        torch.manual_seed(run.trainer.seed + 1_000_003 * run.ctx.rank + run.state.step)
    run.meter.last_finite, run.meter.skipped = run.state.last_finite_loss, run.state.skipped
