"""``dlx diff RUN_A RUN_B``: why did two runs differ? Their configs' differences as dotted
keys with both values, then their results side by side (from ``summary.json``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlx.console import fold, wide
from dlx.errors import UsageError

#: summary.json's scalars shown above the metrics, in this order
SUMMARY_KEYS = ("status", "epochs", "best_epoch", "params", "duration_s")
#: how a key absent from one side shows
ABSENT = "—"


def dotted(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{dotted.key: leaf}``; empty mappings are leaves (``{}``), so
    ``regularization={}`` against ``regularization.ema.decay=0.999`` shows on both sides."""
    if not isinstance(node, Mapping) or (not node and prefix):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(dotted(v, f"{prefix}{k}."))
    return out


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, value_a, value_b)`` for every dotted key whose values differ, sorted by key;
    a key one side lacks has ``ABSENT`` there."""
    fa, fb = dotted(a), dotted(b)
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, ABSENT), fb.get(key, ABSENT)
        if va != vb or type(va) is not type(vb):  # 1 against 1.0 is a difference too
            rows.append((key, va, vb))
    return rows


def load_config(run_dir: Path, label: str) -> dict[str, Any]:
    """The run's saved config as plain data (interpolations resolved where they can be)."""
    from dlx.engine.rundirs import read_config

    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise UsageError(f"{label}={run_dir}: not a dlx run dir (no .hydra/config.yaml)")
    try:
        return read_config(path)
    except ValueError as e:
        raise UsageError(f"{label}={run_dir}: unreadable .hydra/config.yaml ({e})") from None


def metric_rows(sa: Mapping[str, Any], sb: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(name, a, b)``: the summaries' scalars, then the union of their metrics (best
    epoch's train/val and the test figures) and of their last epoch's (``last:…``)."""
    rows = [(k, sa.get(k, ABSENT), sb.get(k, ABSENT)) for k in SUMMARY_KEYS]
    for section, prefix in (("metrics", ""), ("last", "last:")):
        ma, mb = sa.get(section) or {}, sb.get(section) or {}
        for k in list(dict.fromkeys([*ma, *mb])):
            rows.append((prefix + k, ma.get(k, ABSENT), mb.get(k, ABSENT)))
    return rows


def fmt(value: Any) -> str:
    """A value as a user types it in an override (``null``, ``true``, ``0.001``)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def delta(a: Any, b: Any) -> str:
    """``b − a`` for two numbers (not booleans), else empty."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numbers or not all(math.isfinite(v) for v in (a, b)):
        return ""
    d = b - a
    return f"{d:+.4g}" if isinstance(d, float) else f"{d:+d}"


def print_diff(run_a: Path, run_b: Path, console: Console | None = None) -> int:
    """Print both tables; return the number of config differences."""
    console = wide(console)
    from dlx.engine.rundirs import read_run

    ca, cb = load_config(run_a, "RUN_A"), load_config(run_b, "RUN_B")
    sa, sb = read_run(Path(run_a)), read_run(Path(run_b))  # summary.json and overrides
    for label, run, summary in (("A", run_a, sa), ("B", run_b, sb)):
        overrides = " ".join(summary["overrides"]) or "(defaults)"
        status = summary.get("status")
        console.print(escape(f"{label}: {run}  [{status}]  {overrides}"), soft_wrap=True)

    rows = config_diff(ca, cb)
    table = Table(title=f"config: {len(rows)} differences", title_justify="left")
    for col in ("key", "A", "B"):
        table.add_column(col)
    for key, a, b in rows:
        table.add_row(escape(key), escape(fmt(a)), escape(fmt(b)))
    if rows:
        console.print(fold(table))
    else:
        console.print("config: identical")

    results = Table(title="results", title_justify="left")
    results.add_column("metric")
    for col in ("A", "B", "B − A"):
        results.add_column(col, justify="right")
    for name, a, b in metric_rows(sa, sb):
        results.add_row(escape(name), escape(fmt(a)), escape(fmt(b)), delta(a, b))
    console.print(results)
    return len(rows)
