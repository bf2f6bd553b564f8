"""Sweeps: what each trial does before it trains (skip, resume, threads, GPU), and what a
sweep leaves when it ends: ``sweep.json``, ``best.yaml`` and a Rich leaderboard, which
``dlx runs SWEEP_DIR`` shows again later.

Works for every sweeper and launcher: the trial side runs inside the Hydra task, the end
side in a Hydra callback (``hydra.callbacks.dlx_sweep`` in the root config).
"""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlx.console import fold, wide
from dlx.engine import checkpoint
from dlx.engine.monitor import resolve_mode
from dlx.errors import UsageError
from dlx.sweep import pareto
from dlx.sweep.objectives import values

#: a trial with one of these statuses is finished: a re-run of the sweep does not repeat it
FINAL = ("completed", "stopped_early", "diverged", "failed", "pruned")
#: statuses whose objective counts
SUCCESS = ("completed", "stopped_early")
#: what an Optuna trial's state says of a trial whose run dir this sweep cannot read
OPTUNA_STATES = {"complete": "completed", "pruned": "pruned", "fail": "failed"}
#: the record of which overrides ran in a trial dir (guards a re-used sweep dir)
TRIAL_FILE = "trial.json"


# --- inside a trial -------------------------------------------------------------------------
def objective(summary: dict[str, Any], monitor: str = "val/acc") -> float | None:
    """The trial's objective: its best monitored metric; None unless the run succeeded."""
    if summary.get("status") not in SUCCESS:
        return None
    value = summary.get("best_value", summary.get("metrics", {}).get(monitor))
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def recorded(run_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The summary of a finished earlier run of this trial, or None: run it (again).

    A dir that holds a different trial (the sweep dir re-used for another sweep) is refused.
    """
    record = run_dir / TRIAL_FILE
    if record.is_file():
        before = json.loads(record.read_text()).get("overrides")
        if sorted(before or []) != sorted(overrides):
            raise UsageError(
                f"hydra.sweep.dir: {run_dir} holds a trial of another sweep ({' '.join(before)}); "
                "re-run a sweep with its own command, or pick a new hydra.sweep.dir"
            )
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        return None
    try:
        summary = json.loads(summary_file.read_text())
    except json.JSONDecodeError:
        return None
    return summary if summary.get("status") in FINAL else None


def start_trial(run_dir: Path, overrides: list[str]) -> bool:
    """Prepare ``run_dir`` for a (re-)run; True to resume from its ``last.pt``.

    A trial killed before its first checkpoint restarts from scratch: its event files go,
    so TensorBoard does not see two sessions in one trial.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(run_dir / TRIAL_FILE, {"overrides": list(overrides)})
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return True
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink()
    return False


def threads_per_job(n_jobs: int | None, cpus: int) -> int | None:
    """Torch threads for one of ``n_jobs`` parallel jobs on ``cpus`` cores (joblib's
    ``n_jobs``: -1 all cores, -2 all but one …); None: one job at a time, leave torch be."""
    if n_jobs is None:
        return None
    workers = cpus + 1 + n_jobs if n_jobs < 0 else n_jobs
    if workers <= 1:
        return None
    return max(1, cpus // workers)


def gpu_for_job(job_num: int, n_gpus: int, n_jobs: int | None) -> int | None:
    """The GPU index for job ``job_num`` when parallel jobs share several GPUs: round-robin."""
    if n_gpus <= 1 or n_jobs is None or n_jobs == 1:
        return None
    return job_num % n_gpus


def configure_job(job_num: int, n_jobs: int | None) -> None:
    """Divide the cores among parallel jobs and give each job its own GPU when several
    are visible (``torch.cuda.set_device``: a launcher's worker process runs several jobs,
    so ``CUDA_VISIBLE_DEVICES`` could not be changed once CUDA is initialised)."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = threads_per_job(n_jobs, cpus or 1)
    if threads is not None:
        torch.set_num_threads(threads)
    gpu = gpu_for_job(job_num, torch.cuda.device_count(), n_jobs)
    if gpu is not None:
        torch.cuda.set_device(gpu)


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
        cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
        trainer = cfg.get("trainer") or {}
        monitor = info.get("monitor") or trainer.get("monitor", "val/acc")  # the run's own
        status = info["status"]
        if finished and status == "running":
            status = "failed"
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
        if t["status"] == "pruned"
    )
    return saved, full


def pruning_line(trials: list[dict[str, Any]]) -> str:
    """``, 5 pruned (saved 31 of 80 epochs)``; empty when no trial was pruned."""
    pruned = sum(t["status"] == "pruned" for t in trials)
    if not pruned:
        return ""
    saved, full = epochs_saved(trials)
    return f", {pruned} pruned (pruning saved {saved} of {full} epochs)"


class SweepCallback(Callback):
    """Hydra callback: ``sweep.json``, ``best.yaml`` and the leaderboard when a sweep ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from dlx.sweep import outcome

        result = finish(Path(config.hydra.sweep.dir))
        ok = sum(t["status"] in (*SUCCESS, "pruned") for t in result["trials"])  # exit 0
        outcome.report("sweep.json", {"succeeded": ok, "trials": len(result["trials"])})
