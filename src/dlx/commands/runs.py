"""``dlx runs``, ``dlx eval`` and ``dlx summary``: the runs table, a finished run's metrics,
and the model of a config composed outside a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlx.console import fold, wide
from dlx.engine.rundirs import find_runs, read_run
from dlx.errors import UsageError

if TYPE_CHECKING:
    from dlx.engine.spec import RunSpec


def evaluate_run(spec: RunSpec, run_dir: Path, which: str = "best.pt") -> dict[str, float]:
    """Metrics of the run's ``which`` checkpoint on the val and test splits (``dlx eval``)."""
    from dlx.engine.build import build, trained_model
    from dlx.engine.device import pick_device
    from dlx.engine.evaluate import evaluate

    p = build(spec, pick_device(spec.trainer.device), train=False)
    model = trained_model(spec, run_dir, p.info, p.device, which)
    tta = spec.trainer.tta
    metrics = evaluate(model, p.data, "val", p.inputs, p.objective, p.autocast, tta=tta)
    metrics.update(evaluate(model, p.data, "test", p.inputs, p.objective, p.autocast, tta=tta))
    return metrics


def print_eval(spec: RunSpec, run_dir: Path) -> dict[str, float]:
    """``dlx eval``: the best checkpoint's val and test metrics, printed as a table."""
    metrics = evaluate_run(spec, run_dir)
    table = Table(title="best.pt", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    Console().print(table)
    return metrics


def compose(overrides: list[str]):
    """The config ``dlx train OVERRIDES`` would run, without starting a run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from dlx.sweep.compose import hydra_error_line

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("dlx.conf", version_base="1.3"):
            return hydra_compose("config", overrides=overrides)
    except Exception as e:
        line = hydra_error_line(e, overrides)
        if line is None:
            raise
        raise UsageError(line) from None


def print_model_summary(cfg) -> None:
    """``dlx summary``: layers, output shapes, parameters, MACs; last line ``Total params``."""
    from dlx.commands.summary import print_summary
    from dlx.engine.build import model_of
    from dlx.engine.spec import parse

    spec = parse(cfg)
    info = shape_of(spec.data)
    print_summary(model_of(spec.model, info), info, Console())


SHAPE_KEYS = ("image_size", "channels", "num_classes")


def shape_of(data: Any):
    """The data's shape for building a model: from ``data.image_size``, ``data.channels`` and
    ``data.num_classes`` when all three are given (no dataset is read, so any shape goes:
    ImageNet's on the default data), else from the dataset itself (``data``: the parsed
    group)."""
    import torch

    from dlx.data import build_data
    from dlx.data.base import DataInfo

    shape = {k: getattr(data, k, None) for k in SHAPE_KEYS}
    if all(v is not None for v in shape.values()):
        c = shape["channels"]
        return DataInfo(name=data.name, kind="image", mean=(0.5,) * c, std=(0.5,) * c, **shape)
    return build_data(data, torch.device("cpu")).info


# --- the runs table -------------------------------------------------------------------------
COLUMNS = ("val/acc", "test/acc", "val/loss", "test/loss")


def sort_runs(runs: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """``runs`` ordered by ``sort`` (see ``print_runs``); runs without that key go last."""
    name = sort.lstrip("-")
    value = lambda r: r["metrics"].get(name, r.get(name))  # noqa: E731
    if runs and all(value(r) is None for r in runs):
        raise UsageError(
            f"--sort {sort}: no run has it; use a metric ({', '.join(COLUMNS)}), status, "
            "epochs or duration_s"
        )
    from dlx.engine.monitor import resolve_mode

    smaller = resolve_mode(name, "auto") == "min" or "duration" in name  # loss, mse, ppl
    ascending = smaller != sort.startswith("-")
    have = [r for r in runs if value(r) is not None]
    have.sort(
        key=lambda r: value(r) if isinstance(value(r), int | float) else str(value(r)),
        reverse=not ascending,
    )
    return have + [r for r in runs if value(r) is None]


def print_runs(root: Path, sort: str | None = None, console: Console | None = None) -> None:
    """A Rich table of every run under ``root``; ``sort`` by a metric or a summary key.

    Losses, errors (``mse``, ``ppl``) and durations sort best (smallest) first, everything else
    largest first; ``-KEY`` reverses that.
    """
    console = wide(console)
    if not Path(root).exists():
        raise UsageError(f"DIR={root}: no such folder")
    from dlx.sweep.trials import is_sweep_dir, print_leaderboard

    if is_sweep_dir(root):  # a sweep's own dir: its leaderboard
        return print_leaderboard(Path(root), console)
    runs = [read_run(d) for d in find_runs(root)]
    if sort:
        runs = sort_runs(runs, sort)
    table = Table(title=f"runs under {root}", title_justify="left")
    for col in ("run", "status", "overrides", "epochs", *COLUMNS, "time"):
        table.add_column(col, justify="right" if col in COLUMNS or col == "epochs" else "left")
    for r in runs:
        metrics = r["metrics"]
        table.add_row(
            str(Path(r["dir"]).relative_to(root)) if r["dir"] != Path(root) else ".",
            r["status"],
            escape(" ".join(r["overrides"])) or "(defaults)",
            str(r.get("epochs", "")),
            *(f"{metrics[c]:.4f}" if c in metrics else "" for c in COLUMNS),
            f"{r['duration_s']:.0f}s" if "duration_s" in r else "",
        )
    console.print(fold(table))
    console.print(f"{len(runs)} runs")
