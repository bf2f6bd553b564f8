"""What ``dlx report`` and ``dlx study`` read of run dirs: one run's record, a group of runs
that differ only by seed, a report's rows; the figures (``dlx.analysis.plots``) draw them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlx import status
from dlx.engine.monitor import resolve_mode

#: the pseudo-metric of ``dlx.analysis.macs`` (a model's multiply-accumulates per sample)
MACS = "macs"
#: a metric's prefix for its final epoch's figure (``last:train/loss``), not the best epoch's
LAST = "last:"
#: statuses whose figures count in the means
COUNTED = status.COUNTED


@dataclass
class RunRecord:
    """What the report reads of one run dir."""

    dir: Path
    overrides: dict[str, str]
    status: str
    summary: dict[str, Any]
    rows: list[dict[str, float]]  # metrics.csv
    config: dict[str, Any]  # .hydra/config.yaml, read once

    def setting(self, key: str) -> str:
        """The config's value at dotted ``key`` as text ("" where the run has none)."""
        node: Any = self.config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return "" if node is None else str(node)

    def choice(self, key: str) -> str:
        """What a run used for grouping key ``key``: its override if it made one, else the
        config's value, a config group by its option name (``optim`` -> ``adam``, a list
        group by its options: ``[l2,dropout]``), never the whole resolved node."""
        if key in self.overrides:
            return self.overrides[key]
        node: Any = self.config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            name = node.get("name")
            return str(name) if isinstance(name, str) else f"[{','.join(node)}]"
        return "" if node is None else str(node)

    @property
    def monitor(self) -> str:
        """The run's own (its summary's: it follows the task), else its config's."""
        return self.summary.get("monitor") or self.setting("trainer.monitor") or "val/acc"

    @property
    def mode(self) -> str:
        return self.summary.get("mode") or resolve_mode(
            self.monitor, self.setting("trainer.mode") or "auto"
        )

    def value(self, metric: str) -> float | None:
        """The run's figure: its summary's (best epoch), else its last finished epoch's;
        ``last:NAME`` is always the last finished epoch's."""
        if metric == MACS:
            from dlx.analysis.macs import macs_of

            macs = macs_of(self.config)
            return float(macs) if macs is not None else None
        last = metric.startswith(LAST)
        metric = metric.removeprefix(LAST)
        v = self.summary.get("last" if last else "metrics", {}).get(metric)
        if v is None and self.rows:
            v = self.rows[-1].get(metric)
        return float(v) if isinstance(v, int | float) and math.isfinite(v) else None

    def epochs_to(self, target: float, metric: str | None = None) -> int | None:
        """The first epoch whose ``metric`` (default the monitored one) reached ``target``,
        in the metric's direction (None: never)."""
        metric = metric or self.monitor
        mode = self.mode if metric == self.monitor else resolve_mode(metric, "auto")
        for row in self.rows:
            v = row.get(metric)
            if v is not None and (v >= target if mode == "max" else v <= target):
                return int(row["epoch"])
        return None

    def reached(self, target: float, metric: str | None = None) -> tuple[int, bool]:
        """Epochs to ``target`` and True, or the epochs the run ran and False (never: a
        right-censored time, as the log-rank test and ``stats.epochs_text`` read it)."""
        epoch = self.epochs_to(target, metric)
        return (epoch, True) if epoch is not None else (len(self.rows), False)

    def seconds_per_epoch(self) -> float | None:
        if self.rows and self.rows[-1].get("time_s"):
            return float(self.rows[-1]["time_s"]) / int(self.rows[-1]["epoch"])
        return None


@dataclass
class Group:
    """Runs that differ only by seed (or share the ``--by`` keys)."""

    key: dict[str, str]
    runs: list[RunRecord] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # the keys that tell groups apart

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.shown.items()) or "(all runs)"

    @property
    def counted(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status in COUNTED]

    @property
    def failed(self) -> int:
        return len(self.runs) - len(self.counted)


@dataclass
class Report:
    """The table's rows, as numbers (``render`` formats them)."""

    metrics: list[str]
    groups: list[Group]
    target: float | None
    rows: list[dict[str, Any]]
    target_metric: str | None = None  # what the target is on (default trainer.monitor)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and n."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    return statistics.fmean(values), statistics.stdev(values) if n > 1 else 0.0, n
