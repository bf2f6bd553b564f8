"""``trainer.objectives``: what a trial of a multi-objective sweep returns, one value each.

A name is either a metric of the run's summary (``val/acc``, ``test/acc``, ``val/loss``: the
best epoch's, as ``summary.json`` holds it) or a cost figure the run already knows:

- ``params``: trainable parameters (``summary.json``'s ``params``);
- ``macs``: multiply-accumulates of one sample's forward pass (torchinfo, ``dlx.analysis.macs``);
- ``s/epoch``: seconds per epoch (the run's duration over its epochs);
- ``peak_mem_mb``: peak memory of the run (device memory on CUDA, the process's RSS on CPU).

Costs are minimised; metrics follow ``trainer.mode``'s rule (minimise losses, maximise the rest).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from dlx.engine.monitor import resolve_mode
from dlx.errors import UsageError
from dlx.status import SUCCEEDED

Reader = Callable[[dict[str, Any], dict[str, Any]], float | None]
#: a metric's name: split/name (val/acc, test/loss, train/acc)
METRIC = re.compile(r"^[a-z]+/[\w.-]+$")


def _params(summary: dict[str, Any], config: dict[str, Any]) -> float | None:
    return summary.get("params") or None


def _macs(summary: dict[str, Any], config: dict[str, Any]) -> float | None:
    from dlx.analysis.macs import macs_of

    return macs_of(config)


def _seconds_per_epoch(summary: dict[str, Any], config: dict[str, Any]) -> float | None:
    epochs = summary.get("epochs") or 0
    seconds = summary.get("train_time_s") or summary.get("duration_s")
    return seconds / epochs if epochs and seconds else None


def _peak_memory(summary: dict[str, Any], config: dict[str, Any]) -> float | None:
    return summary.get("peak_mem_mb")


#: cost figures by name: how to read each from a finished run (all minimised)
COSTS: dict[str, Reader] = {
    "params": _params,
    "macs": _macs,
    "s/epoch": _seconds_per_epoch,
    "peak_mem_mb": _peak_memory,
}


def check(names: list[str]) -> None:
    """Each name a metric (``split/name``) or a cost; else one line naming what is allowed."""
    for name in names:
        if name not in COSTS and not METRIC.match(name):
            raise UsageError(
                f"trainer.objectives: unknown objective '{name}'; use a metric (val/acc, "
                f"val/loss, test/acc …) or a cost: {', '.join(COSTS)}"
            )
    if len(set(names)) != len(names):
        raise UsageError(f"trainer.objectives={names}: an objective is named twice")


def direction(name: str, monitor: str, mode: str | None) -> str:
    """``minimize`` or ``maximize`` for objective ``name`` (``trainer.mode`` for the monitor)."""
    if name in COSTS:
        return "minimize"
    rule = resolve_mode(name, (mode or "auto") if name == monitor else "auto")
    return "minimize" if rule == "min" else "maximize"


def value(summary: dict[str, Any], name: str, config: dict[str, Any]) -> float | None:
    """One objective's value for a finished run (None: the run has no such figure)."""
    reader = COSTS.get(name)
    v = reader(summary, config) if reader else (summary.get("metrics") or {}).get(name)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def values(summary: dict[str, Any], names: list[str], config: dict[str, Any]) -> list[float] | None:
    """Every objective's value, or None unless the run succeeded and has them all."""
    if summary.get("status") not in SUCCEEDED:
        return None
    out = [value(summary, n, config) for n in names]
    return None if any(v is None for v in out) else [v for v in out if v is not None]
