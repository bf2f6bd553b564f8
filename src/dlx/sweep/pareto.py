"""A multi-objective sweep's Pareto front (``trainer.objectives`` with one
``hydra.sweeper.direction`` each): which trials no other trial beats on every objective, the
leaderboard's order (the front first) and its entry in ``sweep.json``.

The front is Optuna's own (``Study.best_trials`` of an in-memory study holding the trials'
values), so it agrees with the study's and ``optimization_results.yaml``'s ``solutions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def objectives_of(sweep_dir: Path) -> tuple[list[str], list[str]] | None:
    """``(objectives, directions)`` of a multi-objective sweep (its ``multirun.yaml``, where
    the sweeper saved the directions it resolved); None for a single objective."""
    import yaml

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    cfg = yaml.safe_load(path.read_text()) or {}
    directions = ((cfg.get("hydra") or {}).get("sweeper") or {}).get("direction")
    names = (cfg.get("trainer") or {}).get("objectives") or []
    if not isinstance(directions, list) or len(directions) < 2 or len(names) != len(directions):
        return None
    return [str(n) for n in names], [str(d) for d in directions]


def front(values: dict[Any, list[float]], directions: list[str]) -> list[Any]:
    """The keys of ``values`` on the Pareto front (ties on it all kept), in key order."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    keys = list(values)
    study = optuna.create_study(directions=directions)
    for k in keys:
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=values[k]))
    return [keys[t.number] for t in study.best_trials]


def mark(trials: list[dict[str, Any]], directions: list[str]) -> list[int]:
    """Set each trial's ``pareto`` (on the front or not); the front's trial numbers."""
    scored = {i: t["values"] for i, t in enumerate(trials) if t.get("values")}
    on = set(front(scored, directions)) if scored else set()
    for i, t in enumerate(trials):
        t["pareto"] = i in on
    return [trials[i]["number"] for i in sorted(on)]


def ranked(trials: list[dict[str, Any]], directions: list[str]) -> list[dict[str, Any]]:
    """The front first, then the other trials with values, each by the first objective;
    trials without values last, in job order."""
    sign = 1 if directions[0] == "minimize" else -1
    scored = [t for t in trials if t.get("values")]
    scored.sort(key=lambda t: (not t.get("pareto"), sign * t["values"][0]))
    return scored + [t for t in trials if not t.get("values")]


def record(trials: list[dict[str, Any]], names: list[str], directions: list[str]) -> dict:
    """``sweep.json``'s multi-objective keys: the objectives, directions and the front."""
    numbers = mark(trials, directions)
    by_number = {t["number"]: t for t in trials}
    return {
        "objectives": names,
        "directions": directions,
        "pareto_front": [
            {
                "number": n,
                "dir": by_number[n]["dir"],
                "overrides": by_number[n]["overrides"],
                "values": dict(zip(names, by_number[n]["values"], strict=True)),
            }
            for n in numbers
        ],
    }
