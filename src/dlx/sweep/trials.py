"""Sweeps: what a sweep leaves when it ends: ``sweep.json``, ``best.yaml`` and a Rich
leaderboard, which ``dlx runs SWEEP_DIR`` shows again later.

Works for every sweeper and launcher: it runs in a Hydra callback (``hydra.callbacks.dlx_sweep``
in the root config); what each trial does before it trains is ``dlx.sweep.job``.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from rich.console import Console

from dlx import status
from dlx.console import fold, wide
from dlx.engine import checkpoint
from dlx.engine.monitor import resolve_mode
from dlx.status import Status
from dlx.sweep import pareto
from dlx.sweep.leaderboard import leaderboard, ranked
from dlx.sweep.objectives import values

#: a trial with one of these statuses is finished: a re-run of the sweep does not repeat it
FINAL = status.FINAL
#: statuses whose objective counts
SUCCESS = status.SUCCEEDED
#: what an Optuna trial's state says of a trial whose run dir this sweep cannot read
OPTUNA_STATES = {"complete": Status.COMPLETED, "pruned": Status.PRUNED, "fail": Status.FAILED}


def objective(summary: dict[str, Any], monitor: str = "val/acc") -> float | None:
    """The trial's objective: its best monitored metric; None unless the run succeeded."""
    if summary.get("status") not in SUCCESS:
        return None
    value = summary.get("best_value", summary.get("metrics", {}).get(monitor))
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# --- reading a sweep ------------------------------------------------------------------------
def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / "multirun.yaml").is_file()


def _trial_number(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def collect(sweep_dir: Path, finished: bool = False) -> list[dict[str, Any]]:
    """Every trial under ``sweep_dir`` in job order; ``finished``: no trial is still running
    (one without a summary then failed before training)."""
    import yaml

    from dlx.engine.rundirs import find_runs, read_run

    trials = []
    own = find_runs(sweep_dir)
    others, unreadable = study_trials(sweep_dir, own)
    for run_dir in sorted([*own, *others], key=lambda p: _trial_number(p)):
        info = read_run(run_dir)
        text = (run_dir / ".hydra" / "config.yaml").read_text()
        cfg = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        trainer = cfg.get("trainer") or {}
        monitor = info.get("monitor") or trainer.get("monitor", "val/acc")  # the run's own
        status = info["status"]
        if finished and status in (Status.RUNNING, Status.DEAD):  # no summary: never finished
            status = Status.FAILED
        trial = {
            "number": _trial_number(run_dir)[0] if run_dir.name.isdigit() else run_dir.name,
            "dir": str(run_dir),
            "overrides": info["overrides"],
            "status": status,
            "metrics": info["metrics"],
            "objective": objective({**info, "status": status}, monitor),
            "monitor": monitor,
            "mode": info.get("mode") or resolve_mode(monitor, trainer.get("mode", "auto")),
            "duration_s": info.get("duration_s"),
            "epochs": info.get("epochs"),
            "max_epochs": trainer.get("max_epochs"),
        }
        if info.get("error"):
            trial["error"] = info["error"]
        if trainer.get("objectives"):  # a multi-objective sweep: one value per objective
            trial["values"] = values({**info, "status": status}, trainer["objectives"], cfg)
        trials.append(trial)
    trials += unreadable
    trials.sort(key=lambda t: t["number"] if isinstance(t["number"], int) else 1 << 30)
    return trials


def study_trials(sweep_dir: Path, own: list[Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    """The trials of a shared Optuna study that other workers ran (``study.json``, written
    by dlx's Optuna sweeper): their run dirs where this machine sees them, else a record of
    their number, params and end state."""
    path = Path(sweep_dir) / "study.json"
    if not path.is_file():
        return [], []
    mine = {p.resolve() for p in own}
    dirs, unreadable = [], []
    for t in json.loads(path.read_text()).get("trials", []):
        run_dir = Path(t["dir"]) if t.get("dir") else None
        if run_dir is not None and run_dir.resolve() in mine:
            continue
        if t.get("retried") and (run_dir is None or not run_dir.exists()):
            continue  # run again as a later trial, which took over its run dir
        if run_dir is not None and (run_dir / ".hydra" / "config.yaml").is_file():
            dirs.append(run_dir)
        elif t.get("state") in OPTUNA_STATES:  # never started, or on another filesystem
            status = OPTUNA_STATES[t["state"]]
            unreadable.append(
                {
                    "number": t["number"],
                    "dir": t.get("dir"),
                    "overrides": [f"{k}={v}" for k, v in t.get("params", {}).items()],
                    "status": status,
                    "metrics": {},
                    "objective": None,
                    "monitor": None,
                    "mode": None,
                }
            )
    return dirs, unreadable


def print_leaderboard(sweep_dir: Path, console: Console | None = None) -> None:
    """``dlx runs SWEEP_DIR``: the sweep's leaderboard, from its trials as they are now."""
    console = wide(console)
    trials = collect(sweep_dir)
    multi = pareto.objectives_of(sweep_dir)
    if multi:
        pareto.mark(trials, multi[1])
    console.print(fold(leaderboard(trials, f"sweep {sweep_dir}", _direction(sweep_dir), multi)))
    done = sum(t["status"] in FINAL for t in trials)
    console.print(f"{len(trials)} trials, {done} finished" + pruning_line(trials))


def _direction(sweep_dir: Path) -> str | None:
    """max/min from the sweeper's ``direction`` when it has one (Optuna), else None."""
    import yaml

    path = Path(sweep_dir) / "multirun.yaml"  # the sweeper saves the direction it resolved
    if not path.is_file():
        return None
    cfg = yaml.safe_load(path.read_text()) or {}
    direction = ((cfg.get("hydra") or {}).get("sweeper") or {}).get("direction")
    return {"maximize": "max", "minimize": "min"}.get(str(direction))


# --- the end of a sweep -----------------------------------------------------------------------
def best_yaml(best: dict[str, Any], sweep_dir: Path) -> str:
    """``best.yaml``: the best trial's overrides as a YAML list, with the command to re-run."""
    import yaml

    overrides = [o for o in best["overrides"] if not o.startswith(("sweep=", "hydra"))]
    command = shlex.join(["dlx", "train", *overrides])
    header = (
        f"# Best trial of sweep {sweep_dir}: trial {best['number']} ({best['dir']}),\n"
        f"# {best['monitor']} = {best['objective']:.6g}. Train it again with:\n"
        f"#   {command}\n"
        f"# or from this file: dlx train $(sed -n 's/^- //p' best.yaml)\n"
    )
    return header + yaml.safe_dump(overrides, default_flow_style=False, width=1000)


def finish(sweep_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Write ``sweep.json`` and ``best.yaml`` and print the leaderboard; return sweep.json."""
    sweep_dir = Path(sweep_dir)
    trials = collect(sweep_dir, finished=True)
    mode = _direction(sweep_dir)
    multi = pareto.objectives_of(sweep_dir)
    front = pareto.record(trials, *multi) if multi else {}
    order = ranked(trials, mode)
    best = order[0] if order and order[0]["objective"] is not None and not multi else None
    result = {"sweep_dir": str(sweep_dir), "trials": trials, "best": best, **front}
    checkpoint.write_json(sweep_dir / "sweep.json", result)
    if best is not None:
        text = best_yaml(best, sweep_dir)
        checkpoint.atomic_write(sweep_dir / "best.yaml", lambda f: f.write(text.encode()))
    console = wide(console)
    console.print(fold(leaderboard(trials, f"sweep {sweep_dir}", mode, multi)))
    ok = sum(t["status"] in SUCCESS for t in trials)
    console.print(
        f"{ok} of {len(trials)} trials succeeded"
        + pruning_line(trials)
        + "; sweep.json"
        + (", best.yaml" if best else "")
        + (f" (Pareto front: {len(front['pareto_front'])} trials)" if multi else "")
        + f" in {sweep_dir}"
    )
    return result


def epochs_saved(trials: list[dict[str, Any]]) -> tuple[int, int]:
    """(epochs the pruned trials did not train, epochs every trial in full would have)."""
    full = sum(t.get("max_epochs") or 0 for t in trials)
    saved = sum(
        max(0, (t.get("max_epochs") or 0) - (t.get("epochs") or 0))
        for t in trials
        if t["status"] == Status.PRUNED
    )
    return saved, full


def pruning_line(trials: list[dict[str, Any]]) -> str:
    """``, 5 pruned (saved 31 of 80 epochs)``; empty when no trial was pruned."""
    pruned = sum(t["status"] == Status.PRUNED for t in trials)
    if not pruned:
        return ""
    saved, full = epochs_saved(trials)
    return f", {pruned} pruned (pruning saved {saved} of {full} epochs)"


class SweepCallback(Callback):
    """Hydra callback: ``sweep.json``, ``best.yaml`` and the leaderboard when a sweep ends."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from dlx.sweep import outcome

        result = finish(Path(config.hydra.sweep.dir))
        ok = sum(t["status"] in (*SUCCESS, Status.PRUNED) for t in result["trials"])  # exit 0
        outcome.report("sweep.json", {"succeeded": ok, "trials": len(result["trials"])})
        from dlx.sweep.watchdog import stop_idle_workers

        stop_idle_workers()
