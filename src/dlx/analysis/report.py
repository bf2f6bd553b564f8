"""``dlx report DIR``: the runs under DIR grouped by what differs between them, over seeds.

Runs are grouped by their overrides other than ``trainer.seed`` (or by ``--by KEY…``); each
group shows mean ± std and n of the chosen metrics, params, seconds per epoch and, with
``--target V``, the epochs the monitored metric took to reach V. Failed and diverged runs are
counted in their group, never dropped; a run still training shows what it has so far. The table
is printed and written to ``DIR/report/report.md`` beside PNG figures (``dlx.analysis.plots``).
The records it reads and groups are in ``dlx.analysis.records``.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlx.analysis.records import MACS, Group, Report, RunRecord, mean_std
from dlx.console import fold, wide
from dlx.errors import UsageError

#: overrides that never make a group: the seed (what a group averages over) and Hydra's own
IGNORED = ("trainer.seed", "hydra.", "sweep=")


def load_runs(root: Path) -> list[RunRecord]:
    """Every run dir under ``root`` with its summary, metrics.csv and overrides."""
    import yaml

    from dlx.callbacks.csvlog import FILE, read_rows
    from dlx.engine.rundirs import find_runs, read_run

    records, damaged = [], []
    for d in find_runs(root):
        try:
            info = read_run(d)
            config = yaml.safe_load((d / ".hydra" / "config.yaml").read_text()) or {}
            if not isinstance(config, dict):
                raise ValueError(".hydra/config.yaml is not a mapping")
            rows = [
                {k: float(v) for k, v in r.items() if v not in ("", None)}
                for r in read_rows(d / FILE)
            ]
        except (OSError, ValueError, TypeError, AttributeError, csv.Error, yaml.YAMLError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            damaged.append(f"{d} ({reason})")
            continue
        overrides = dict(o.split("=", 1) if "=" in o else (o, "") for o in info["overrides"])
        records.append(RunRecord(d, overrides, info["status"], info, rows, config))
    if damaged and not records:
        raise UsageError(f"DIR={root}: every run under it is damaged: {'; '.join(damaged)}")
    for line in damaged:
        print(f"dlx report: skipped damaged run {line}", file=sys.stderr)
    return records


def group_runs(runs: list[RunRecord], by: Sequence[str] | None = None) -> list[Group]:
    """Groups in order of first appearance, keyed by ``by`` or by every varied override."""
    if by:
        missing = [k for k in by if not any(k in r.overrides or r.setting(k) for r in runs)]
        if missing:
            raise UsageError(f"--by {missing[0]}: no run has it; use an override key")
    groups: dict[tuple[tuple[str, str], ...], Group] = {}
    for r in runs:
        keys = by or [k for k in r.overrides if not k.startswith(IGNORED)]
        key = tuple((k, r.choice(k)) for k in keys)
        groups.setdefault(key, Group(dict(key))).runs.append(r)
    out = list(groups.values())
    keys = list(dict.fromkeys(k for g in out for k in g.key))
    varying = [k for k in keys if len({g.key.get(k) for g in out}) > 1] or keys
    for g in out:
        g.shown = {k: g.key.get(k, "") for k in varying}
    return out


def common_overrides(groups: list[Group]) -> dict[str, str]:
    """The overrides every group shares (said once, above the table)."""
    first = groups[0].key
    return {
        k: v
        for k, v in first.items()
        if k not in groups[0].shown and all(g.key.get(k) == v for g in groups)
    }


def default_metrics(runs: list[RunRecord]) -> list[str]:
    """The monitored metric's test and val figures (``val/acc`` -> ``test/acc``, ``val/acc``)."""
    monitor = runs[0].monitor if runs else "val/acc"
    name = monitor.split("/", 1)[-1]
    return [f"test/{name}", f"val/{name}"]


def build(
    root: Path,
    by: Sequence[str] | None,
    metrics: Sequence[str] | None,
    target: float | None,
    target_metric: str | None = None,
) -> Report:
    runs = load_runs(root)
    if not runs:
        raise UsageError(f"DIR={root}: no runs under it (no */.hydra/config.yaml)")
    groups = group_runs(runs, by)
    chosen = list(metrics or default_metrics(runs))
    rows = []
    for g in groups:
        row: dict[str, Any] = {"group": g.label, "n": len(g.counted), "failed": g.failed}
        for m in chosen:
            row[m] = mean_std([v for r in g.counted if (v := r.value(m)) is not None])
        params = {r.summary.get("params") for r in g.runs if r.summary.get("params")}
        row["params"] = params.pop() if len(params) == 1 else None
        row["s/epoch"] = mean_std([v for r in g.counted if (v := r.seconds_per_epoch())])
        if target is not None:
            row["epochs to target"] = [r.reached(target, target_metric) for r in g.counted]
        rows.append(row)
    return Report(chosen, groups, target, rows, target_metric)


def _fmt(ms: tuple[float, float, int], digits: int = 4, metric: str = "") -> str:
    mean, std, n = ms
    if n == 0:
        return "-"
    if metric == MACS:  # one model per group: a count, not a spread
        return f"{mean:,.0f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def columns(report: Report) -> list[str]:
    cols = ["group", "n", "failed", *report.metrics, "params", "s/epoch"]
    return [*cols, "epochs to target"] if report.target is not None else cols


def cells(report: Report, row: dict[str, Any]) -> list[str]:
    from rich.markup import escape

    out = [escape(row["group"]), str(row["n"]), str(row["failed"])]  # augment=[noise] is no markup
    out += [_fmt(row[m], metric=m) for m in report.metrics]
    out.append(f"{row['params']:,}" if row["params"] else "-")
    out.append(_fmt(row["s/epoch"], 2))
    if report.target is not None:
        from dlx.analysis.stats import epochs_text

        out.append(epochs_text(row["epochs to target"]))
    return out


def markdown(report: Report, root: Path, figures: list[str]) -> str:
    cols = columns(report)
    lines = [
        f"# Report: {root}",
        "",
        "Groups by overrides other than the seed; mean ± std "
        "over the n runs that count (failed and diverged runs are counted apart).",
        "",
    ]
    common = common_overrides(report.groups)
    if common:
        lines += ["Every run: `" + " ".join(f"{k}={v}" for k, v in common.items()) + "`.", ""]
    if report.target is not None:
        on = report.target_metric or report.groups[0].runs[0].monitor
        lines += [f"Target: {on} reaching {report.target}.", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(cells(report, r)) + " |" for r in report.rows]
    lines += ["", *[f"![{Path(f).stem}]({f})" for f in figures], ""]
    return "\n".join(lines)


def run_report(
    root: Path,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    target: float | None = None,
    target_metric: str | None = None,
) -> Report:
    """Build, print and write the report of ``root``; the report."""
    from rich.markup import escape
    from rich.table import Table

    from dlx.analysis.front import draw_front
    from dlx.analysis.plots import draw
    from dlx.engine.checkpoint import atomic_write

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"DIR={root}: no such folder")
    report = build(root, by, metrics, target, target_metric)
    out = root / "report"
    figures = draw(report, out) + draw_front(root, out)
    text = markdown(report, root, [Path(f).name for f in figures])
    atomic_write(out / "report.md", lambda f: f.write(text.encode()))
    console = wide()
    table = Table(title=escape(f"report {root}"), title_justify="left")
    for c in columns(report):
        table.add_column(c, justify="left" if c == "group" else "right")
    for row in report.rows:
        table.add_row(*cells(report, row))
    console.print(fold(table))
    console.print(f"wrote {out / 'report.md'} and {len(figures)} figures")
    return report
