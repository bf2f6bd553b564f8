"""``trainer.profile=true``: profile a few training steps, then train on as usual.

The first steps are skipped (``wait``), the next warm up the profiler (``warmup``), the
``active`` ones are recorded. When they are done the run dir gets ``profile/trace.json`` (open
it in https://ui.perfetto.dev or chrome://tracing) and the terminal a table of the ops that
took the most self time (CUDA time when the run is on a GPU, CPU time otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch.profiler import ProfilerActivity, profile, schedule

WAIT, WARMUP, ACTIVE = 1, 1, 3
TOP = 15


class StepProfiler:
    """Call ``step()`` after every training step; it stops by itself after the active steps."""

    def __init__(self, run_dir: Path, device: torch.device, show: Any) -> None:
        self.path = Path(run_dir) / "profile" / "trace.json"
        self.cuda = device.type == "cuda"
        self.show = show  # prints a Rich renderable
        self.steps = 0
        self.done = False
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        self.prof = profile(
            activities=activities,
            schedule=schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=1),
            on_trace_ready=self._ready,
            record_shapes=True,
        )
        self.prof.start()

    def step(self) -> None:
        if self.done:
            return
        self.prof.step()
        self.steps += 1
        if self.steps >= WAIT + WARMUP + ACTIVE:
            self.stop()

    def stop(self) -> None:
        """End profiling now (also when the epoch had fewer steps than the schedule)."""
        if not self.done:
            self.done = True
            self.prof.stop()

    def _ready(self, prof: profile) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(self.path))
        self.show(top_ops_table(prof, self.cuda, self.path))


def top_ops_table(prof: profile, cuda: bool, trace: Path, top: int = TOP) -> Table:
    """The ``top`` ops by self time over the active steps, as a Rich table."""
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    ops = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    events = sorted(ops, key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key, 0) for e in events) or 1
    where = "CUDA" if cuda else "CPU"
    table = Table(title=f"profile: top ops by self {where} time ({ACTIVE} steps; trace {trace})")
    table.add_column("op")
    table.add_column(f"self {where} ms", justify="right")
    table.add_column("%", justify="right")
    table.add_column("calls", justify="right")
    for e in events[:top]:
        t = getattr(e, key, 0)
        table.add_row(e.key, f"{t / 1000:.3f}", f"{100 * t / total:.1f}", str(e.count))
    return table
