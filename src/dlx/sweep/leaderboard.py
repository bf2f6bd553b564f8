"""A sweep's leaderboard: its trials ranked (by objective, or a multi-objective sweep's
Pareto front first) in a Rich table of the swept values, metrics, status and time."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from dlx.sweep import pareto


def ranked(trials: list[dict[str, Any]], mode: str | None = None) -> list[dict[str, Any]]:
    """Trials best first (by objective; ``mode`` max or min, default the trials' own);
    those without an objective last, in job order."""
    scored = [t for t in trials if t["objective"] is not None]
    mode = mode or (scored[0]["mode"] if scored else "max")
    scored.sort(key=lambda t: -t["objective"] if mode == "max" else t["objective"])
    return scored + [t for t in trials if t["objective"] is None]


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``["optim=sgd", "optim.lr=0.1"]`` -> ``{"optim": "sgd", "optim.lr": "0.1"}``."""
    return dict(o.split("=", 1) if "=" in o else (o, "") for o in overrides)


def swept_keys(trials: list[dict[str, Any]]) -> list[str]:
    """The override keys whose values differ between trials (or that some trials lack)."""
    parsed = [parse_overrides(t["overrides"]) for t in trials]
    keys: list[str] = []
    for p in parsed:
        keys += [k for k in p if k not in keys]
    return [k for k in keys if len({p.get(k) for p in parsed}) > 1]


def _fmt(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if value.lstrip("-").isdigit() else f"{number:.4g}"


def _metric_columns(trials: list[dict[str, Any]]) -> list[str]:
    """The monitored metric first (what the ranking uses), then val/acc and test/acc."""
    monitors = [t["monitor"] for t in trials if t.get("monitor")]
    return list(dict.fromkeys([*monitors[:1], "val/acc", "test/acc"]))


def _cell(t: dict[str, Any], column: str, objectives: list[str]) -> str:
    """A metric's or an objective's figure (a count of params or MACs in full)."""
    if column in objectives and t.get("values"):
        v = t["values"][objectives.index(column)]
    elif column in t["metrics"]:
        v = t["metrics"][column]
    else:
        return ""
    if column in ("params", "macs"):
        return f"{v:,.0f}"
    return f"{v:.4f}" if "/" in column and column != "s/epoch" else f"{v:.4g}"


def leaderboard(
    trials: list[dict[str, Any]],
    title: str,
    mode: str | None = None,
    multi: tuple[list[str], list[str]] | None = None,
) -> Table:
    """The Rich leaderboard: rank, trial, swept values, val/acc, test/acc, status, time;
    a multi-objective sweep's (``multi``: objectives, directions) shows each objective and
    marks the Pareto front, ranked first."""
    keys = swept_keys(trials)
    objectives = multi[0] if multi else []
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    for k in keys:
        table.add_column(escape(k))
    columns = list(dict.fromkeys([*objectives, *_metric_columns(trials)]))
    for col in columns:
        table.add_column(escape(col), justify="right")
    if multi:
        table.add_column("front")
    table.add_column("status")
    table.add_column("time", justify="right")
    order = pareto.ranked(trials, multi[1]) if multi else ranked(trials, mode)
    for i, t in enumerate(order):
        swept = parse_overrides(t["overrides"])
        scored = t.get("values") if multi else t["objective"] is not None
        table.add_row(
            str(i + 1) if scored else "-",
            str(t["number"]),
            *(escape(_fmt(swept.get(k, ""))) for k in keys),
            *(_cell(t, c, objectives) for c in columns),
            *(["●" if t.get("pareto") else ""] if multi else []),
            t["status"],
            f"{t['duration_s']:.1f}s" if t.get("duration_s") is not None else "",
        )
    return table
