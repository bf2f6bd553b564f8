"""The figures of ``dlx report``: learning curves per group (mean over seeds, a band of ±1
std), a bar chart of each chosen metric with error bars and, for runs that logged them
(``trainer.log_grad_norms``), each layer's final gradient norm from input to output on a log
scale. matplotlib (Agg) is imported here alone, when a report is drawn."""

from __future__ import annotations

import statistics
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlx.analysis.records import Group, Report


#: the per-layer gradient norms' metric prefix (``dlx.callbacks.grad_norms``)
GRADS = "grads/norm/"
LABEL_CHARS = 26  # a bar's label wraps at this many characters (7 pt: 1.6 in, one bar's width)


def curve(group: Group, metric: str) -> tuple[list[int], list[float], list[float]]:
    """Epochs, mean and std of ``metric`` over the group's counted runs, epoch by epoch (a run
    still training adds what it has so far)."""
    by_epoch: dict[int, list[float]] = {}
    for r in group.counted:
        for row in r.rows:
            if metric in row:
                by_epoch.setdefault(int(row["epoch"]), []).append(row[metric])
    epochs = sorted(by_epoch)
    means = [statistics.fmean(by_epoch[e]) for e in epochs]
    stds = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, stds


def _slug(metric: str) -> str:
    """A file-name-safe form of a metric: ``last:train/loss`` -> ``last_train_loss``."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in metric)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend_below(fig: Any, n: int) -> None:
    """The legend under the axes, outside them (constrained layout makes room): it never
    covers a curve, however many groups there are."""
    fig.legend(loc="outside lower center", ncols=1 if n > 6 else min(n, 2), fontsize=7)


def curves_figure(report: Report, metric: str) -> Any:
    """``metric`` epoch by epoch, one line per group (mean, a band of ±1 std)."""
    plt = _pyplot()
    n = len(report.groups)
    rows = n if n > 6 else (n + 1) // 2
    fig, ax = plt.subplots(figsize=(7, 4.2 + 0.2 * rows), layout="constrained")
    for g in report.groups:
        epochs, mean, std = curve(g, metric)
        if not epochs:
            continue
        line = ax.plot(epochs, mean, marker="o", ms=3, label=f"{g.label} (n={len(g.counted)})")
        lo = [m - s for m, s in zip(mean, std, strict=True)]
        hi = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(epochs, lo, hi, color=line[0].get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean over seeds, band ±1 std")
    ax.grid(alpha=0.3)
    _legend_below(fig, n)
    return fig


def bars_figure(stats: list[tuple[str, tuple[float, float, int]]], metric: str) -> Any:
    """One bar per group: mean ± std of ``metric``; the group labels whole under the bars."""
    plt = _pyplot()
    labels = [textwrap.fill(name, LABEL_CHARS) for name, _ in stats]
    lines = max(label.count("\n") + 1 for label in labels)  # wrapped: never wider than a bar
    fig, ax = plt.subplots(
        figsize=(max(4.0, 1.6 * len(stats) + 1), 3.4 + 0.16 * lines), layout="constrained"
    )
    ax.bar(
        range(len(stats)),
        [s[1][0] for s in stats],
        yerr=[s[1][1] for s in stats],
        capsize=4,
        color="#4C72B0",
    )
    ax.set_xticks(range(len(stats)), labels, fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± std over seeds")
    ax.grid(axis="y", alpha=0.3)
    return fig


def draw(report: Report, out: Path) -> list[Path]:
    """Write the PNGs into ``out``; their paths."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    monitor = report.groups[0].runs[0].monitor
    for metric in dict.fromkeys(["train/loss", monitor]):
        figures[f"curves_{_slug(metric)}.png"] = curves_figure(report, metric)
    for metric in report.metrics:
        stats = [(row["group"], row[metric]) for row in report.rows if row[metric][2] > 0]
        if stats:
            figures[f"bars_{_slug(metric)}.png"] = bars_figure(stats, metric)
    written = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(out / name)
    written += filter(None, [_grad_norms(report, out, plt), _epochs(report, out, plt)])
    return written


def layer_norms(group: Group) -> tuple[list[str], list[float], list[float]]:
    """Layers in the model's order, the mean and std over the group's runs of each one's
    ``grads/norm/<layer>`` in the final epoch."""
    per_layer: dict[str, list[float]] = {}
    for r in group.counted:
        for k, v in (r.rows[-1] if r.rows else {}).items():
            if k.startswith(GRADS):
                per_layer.setdefault(k[len(GRADS) :], []).append(v)
    layers = list(per_layer)
    means = [statistics.fmean(per_layer[k]) for k in layers]
    stds = [statistics.stdev(per_layer[k]) if len(per_layer[k]) > 1 else 0.0 for k in layers]
    return layers, means, stds


def _grad_norms(report: Report, out: Path, plt: Any) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")
    drawn = False
    for g in report.groups:
        layers, mean, std = layer_norms(g)
        if not layers:
            continue
        drawn = True
        ax.errorbar(range(len(layers)), mean, yerr=std, marker="o", ms=4, capsize=3, label=g.label)
        ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right", fontsize=7)
    if not drawn:
        plt.close(fig)
        return None
    ax.set_yscale("log")
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel("gradient L2 norm, final epoch")
    ax.set_title("grads/norm/<layer>: mean ± std over seeds")
    ax.grid(alpha=0.3, which="both")
    _legend_below(fig, len(report.groups))
    path = out / "grad_norms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _epochs(report: Report, out: Path, plt: Any) -> Path | None:
    """Each run's epochs to the target, per group, with the runs that never reached it on a
    row of their own marked ``never`` (as the table and the verdicts say it)."""
    from dlx.analysis.stats import epochs_text

    if report.target is None:
        return None
    runs = [row["epochs to target"] for row in report.rows]
    top = max((e for group in runs for e, _ in group), default=0) + 1
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(runs) + 2), 4.6), layout="constrained")
    for i, group in enumerate(runs):
        ys = [e if reached else top for e, reached in group]
        xs = [i + 0.08 * (j - (len(ys) - 1) / 2) for j in range(len(ys))]
        ax.scatter(xs, ys, color=["#4C72B0" if r else "#C44E52" for _, r in group], zorder=3)
    labels = [f"{row['group']}\n{epochs_text(g)}" for row, g in zip(report.rows, runs, strict=True)]
    ax.set_xticks(range(len(runs)), labels, rotation=20, ha="right", fontsize=7)
    ticks = list(range(1, top))
    ax.set_yticks([*ticks, top], [*map(str, ticks), "never"])
    ax.set_ylabel("epochs to target (one point per run)")
    on = report.target_metric or report.groups[0].runs[0].monitor
    ax.set_title(f"epochs until {on} reaches {report.target}")
    ax.grid(axis="y", alpha=0.3)
    path = out / "epochs_to_target.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
