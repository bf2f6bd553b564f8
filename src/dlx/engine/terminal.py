"""What a run prints while it trains, readable at any width and in any log.

On a terminal: a Rich bar per epoch (description, bar, step count, elapsed, ETA, the latest
figures) that fits the console's width by dropping columns and shortening the figures, never
the bar. Piped (a SLURM log, CI): plain lines, each with the epoch, the step count, the ETA
of the whole run and the latest figures, at log steps at most every ``PLAIN_EVERY_S``, and
one per finished epoch. Either way the run dir is printed first, a sweep trial's lines carry
``[trial N]``, and the same lines go to the ``dlx.run`` logger, which Hydra's job logging
writes to the run dir's ``train.log``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console

from dlx.console import fold, wide

#: seconds between two plain progress lines (piped output)
PLAIN_EVERY_S = 5.0
#: the bar's width bounds on a terminal: it shrinks to BAR_MIN before any column goes
BAR_MIN, BAR_MAX = 10, 40
#: below this many characters the figures beside the bar are dropped, not shown cut to bits
METRICS_MIN = 12

log = logging.getLogger("dlx.run")


class NotRunLines(logging.Filter):
    """Leaves out ``dlx.run``'s records: Hydra's console handler would repeat on the terminal
    what dlx prints itself (conf/hydra/job_logging/dlx.yaml); its file handler keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(log.name)


def fmt_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def fmt_duration(seconds: float) -> str:
    s = int(max(seconds, 0) + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def trial_prefix() -> str:
    """``[trial N] `` inside a sweep's job (joblib workers interleave), else ""."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return f"[trial {hc.job.num}] " if hc.mode == RunMode.MULTIRUN else ""
    except (ImportError, ValueError):  # not inside a Hydra job
        return ""


def fit_widths(width: int, fixed: list[int], metrics: int) -> tuple[list[bool], int, int]:
    """Which of the ``fixed``-width columns (in priority order) to keep beside the
    description and the bar, the bar's width and the figures' width (0: dropped), so that one
    line fits ``width`` characters: columns go before the bar shrinks below ``BAR_MIN``."""
    desc, *rest = fixed
    used = desc + 1 + BAR_MIN
    keep = []
    for w in rest:
        keep.append(used + 1 + w <= width)
        used += 1 + w if keep[-1] else 0
    free = width - used
    bar = BAR_MIN + max(0, min(BAR_MAX - BAR_MIN, free - (metrics + 1)))
    room = width - used - (bar - BAR_MIN) - 1
    return keep, bar, min(metrics, room) if room >= METRICS_MIN else 0


def fitting_bar(console: Console) -> Any:
    """A Rich ``Progress`` whose line always fits ``console``'s width (``fit_widths``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.table import Column

    class FittingProgress(RichProgress):
        def make_tasks_table(self, tasks: Any) -> Any:
            shown = [t for t in tasks if t.visible]
            desc = max((len(t.description) for t in shown), default=0)
            total = max((len(str(int(t.total or 0))) for t in shown), default=1)
            text = max((len(t.fields.get("metrics", "")) for t in shown), default=0)
            keep, bar.bar_width, figures.max_width = fit_widths(
                console.width, [desc, 2 * total + 1, 7, 7], text
            )
            optional = [c for c, k in zip((count, remaining, elapsed), keep, strict=True) if k]
            self.columns = (name, bar, *optional, *([metrics] if figures.max_width else []))
            return super().make_tasks_table(tasks)

    figures = Column(no_wrap=True, overflow="ellipsis")
    name = TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True))
    bar = BarColumn(bar_width=BAR_MAX)
    count, remaining, elapsed = MofNCompleteColumn(), TimeRemainingColumn(), TimeElapsedColumn()
    metrics = TextColumn("{task.fields[metrics]}", table_column=figures)
    return FittingProgress(name, bar, count, remaining, elapsed, metrics, console=console)


class Progress:
    """A Rich progress bar on a terminal; plain periodic lines otherwise (logs, CI, pipes)."""

    def __init__(self, console: Console | None = None, enabled: bool = True) -> None:
        self.console = wide(console or Console(stderr=False))
        self.enabled = enabled
        self.rich = enabled and self.console.is_terminal
        self.prefix = trial_prefix()
        self._bar: Any = None
        self._task: Any = None
        self._last_plain = 0.0
        self._epoch_text = ""
        self._epoch, self._max_epochs, self._total, self._done = 0, 1, 0, 0
        self._started, self._start_done = time.monotonic(), 0

    def _line(self, text: str) -> None:
        """A plain line on stdout (with the trial's prefix) and in the run's log."""
        log.info(text)
        if self.enabled:
            print(f"{self.prefix}{text}", flush=True)

    def announce(self, run_dir: Any) -> None:
        """The run dir, first, whole, on a line of its own."""
        self._line(f"run dir: {run_dir}")

    def start_epoch(self, epoch: int, max_epochs: int, total: int, done: int = 0) -> None:
        """A bar for the epoch, at ``done`` of ``total`` steps (a resume enters mid-way)."""
        self._epoch_text = f"epoch {epoch + 1}/{max_epochs}"
        self._epoch, self._max_epochs, self._total, self._done = epoch, max_epochs, total, done
        self._started, self._start_done = time.monotonic(), done
        if not self.rich:
            return
        if self._bar is None:
            self._bar = fitting_bar(self.console)
            self._bar.start()
        desc = f"{self.prefix}{self._epoch_text}"
        self._task = self._bar.add_task(desc, total=total, completed=done, metrics="")

    def set_done(self, done: int) -> None:
        """The epoch's steps done so far (no host sync: it counts, it reads nothing)."""
        steps, self._done = done - self._done, done
        if self.rich and self._bar is not None and steps:
            self._bar.update(self._task, advance=steps)

    def eta(self) -> float | None:
        """Seconds left in the whole run, at this epoch's pace so far."""
        steps, spent = self._done - self._start_done, time.monotonic() - self._started
        if steps <= 0 or spent <= 0:
            return None
        left = self._total - self._done + (self._max_epochs - self._epoch - 1) * self._total
        return left * spent / steps

    def status_text(self, metrics: Mapping[str, float]) -> str:
        eta = self.eta()
        where = f"{self._epoch_text}  step {self._done}/{self._total}"
        return f"{where}  eta {'?' if eta is None else fmt_duration(eta)}  {fmt_metrics(metrics)}"

    def show(self, metrics: Mapping[str, float]) -> None:
        """The latest logged figures: beside the bar, or a plain line every few seconds."""
        now = time.monotonic()
        if self.rich and self._bar is not None:
            self._bar.update(self._task, metrics=fmt_metrics(metrics))
        if now - self._last_plain < PLAIN_EVERY_S:
            return
        self._last_plain = now
        if self.rich:
            log.info(self.status_text(metrics))
        else:
            self._line(self.status_text(metrics))

    def end_epoch(self, metrics: Mapping[str, float]) -> None:
        text = f"{self._epoch_text}  {fmt_metrics(metrics)}"
        if self.rich and self._bar is not None:  # val/* first: a narrow bar shortens the end
            val = {k: v for k, v in metrics.items() if k.startswith("val/")}
            self._bar.update(self._task, metrics=fmt_metrics({**val, **metrics}))
            log.info(text)
        else:
            self._line(text)

    def finish(self, status: str, run_dir: Any, error: str | None = None) -> None:
        """The run's last line in its log; a failed or diverged trial also names its run
        dir on stderr (a single run's comes from ``dlx train`` itself)."""
        line = f"{status}{f': {error}' if error else ''}; run dir: {run_dir}"
        log.info(line)
        if self.prefix and status in ("failed", "diverged"):
            import sys

            print(f"{self.prefix}{line}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def print(self, table: Any) -> None:
        """``table`` whole: folded on a narrow terminal, at its own width in a log."""
        (self._bar.console if self._bar is not None else self.console).print(fold(table))
