"""``dlx report``'s figure of a multi-objective sweep: its first objective against each other
one (``val/acc`` against ``params``, say), every trial a point, the Pareto front's points
joined in a line. Read from the sweep's ``sweep.json`` (``pareto_front``, each trial's
``values``); nothing for a single-objective sweep or a folder of runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: objectives spanning orders of magnitude: a log axis
LOG_SCALE = ("params", "macs")


def _sweep(root: Path) -> dict[str, Any] | None:
    path = Path(root) / "sweep.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if data.get("pareto_front") is not None and data.get("objectives") else None


def _axes(ax: Any, trials: list[dict], front: set[int], i: int, names: list[str]) -> None:
    """Objective 0 (y) against objective ``i`` (x): the trials, the front joined."""
    others = [t for t in trials if t["number"] not in front]
    on = sorted((t for t in trials if t["number"] in front), key=lambda t: t["values"][i])
    ax.scatter(
        [t["values"][i] for t in others],
        [t["values"][0] for t in others],
        c="0.6",
        s=18,
        label="trials",
    )
    ax.plot(
        [t["values"][i] for t in on],
        [t["values"][0] for t in on],
        "o-",
        color="C3",
        ms=6,
        label="Pareto front",
    )
    labels: dict[tuple[float, float], list[str]] = {}  # trials at one point share a label
    for t in on:
        labels.setdefault((t["values"][i], t["values"][0]), []).append(str(t["number"]))
    for xy, numbers in labels.items():
        ax.annotate(",".join(numbers), xy, xytext=(4, -10), textcoords="offset points", fontsize=7)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[0])
    if names[i] in LOG_SCALE:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def draw_front(root: Path, out: Path) -> list[Path]:
    """``pareto.png`` (one panel per objective after the first) in ``out``; [] if the
    folder is no multi-objective sweep or no trial has values."""
    data = _sweep(root)
    if data is None:
        return []
    trials = [t for t in data["trials"] if t.get("values")]
    if not trials:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = data["objectives"]
    front = {t["number"] for t in data["pareto_front"]}
    panels = len(names) - 1
    fig, axes = plt.subplots(
        1, panels, figsize=(6 * panels, 4.2), squeeze=False, layout="constrained"
    )
    for i in range(1, len(names)):
        _axes(axes[0][i - 1], trials, front, i, names)
    directions = ", ".join(f"{n}: {d}" for n, d in zip(names, data["directions"], strict=True))
    fig.suptitle(f"Pareto front ({directions})", fontsize=10)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pareto.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
