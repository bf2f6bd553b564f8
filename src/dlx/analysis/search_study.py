"""``dlx study search``: a study whose unit is a whole sweep, not a run.

A search study's YAML names ``samplers`` (each the search space its sweep gives dlx's Optuna
sweeper: ``grid`` with ``choice`` params, ``random`` with intervals), the ``trials`` per
sweep, the search ``seeds`` (the sweeper's ``sampler.seed``: for the grid, the order it
visits its cells), the fixed ``overrides`` of every trial and a ``target`` objective value.
Each (sampler, seed) sweep runs into ``OUT/<sampler>-s<seed>/`` (a re-run resumes: finished
trials are re-used). Its curve is the best objective so far against trials; the claims:
``better`` reaches the target, and the best value of the whole ``than`` sweep, in fewer
trials -- log-rank tests over the search seeds (a sweep that never got there is censored at
its last trial), Holm's correction across the two. The analysis is in ``search_report``; the
run, in ``dlx.analysis.settle.run_search``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlx.errors import UsageError


@dataclass
class SearchStudy:
    name: str
    claim: str
    source: str
    budget: str
    samplers: dict[str, list[str]]  # sampler -> the sweep's search-space overrides
    target: float  # the objective value counted as good
    trials: int = 16
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    overrides: list[str] = field(default_factory=list)
    better: str = "random"
    than: str = "grid"
    alpha: float = 0.05
    important: str = ""  # the hyperparameter that matters, named in the report
    direction: str = "minimize"  # the objective's (trainer.monitor's) direction


def is_search(path: Path) -> bool:
    """Whether the study file at ``path`` is a search study (it names ``samplers``)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "samplers" in data


def load(path: Path) -> SearchStudy:
    """The search study in ``path``, checked: one line naming the key when something is off."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    known = set(SearchStudy.__dataclass_fields__)
    for key in data:
        if key not in known:
            raise UsageError(f"study {path.stem}: {key}: unknown key; allowed: {sorted(known)}")
    try:
        st = SearchStudy(**data)
    except TypeError as e:
        raise UsageError(f"study {path.stem}: {e}") from None
    for side in (st.better, st.than):
        if side not in st.samplers:
            raise UsageError(
                f"study {st.name}: better/than: {side}; allowed: {', '.join(st.samplers)}"
            )
    if st.direction not in ("minimize", "maximize"):
        raise UsageError(f"study {st.name}: direction: {st.direction}; allowed: minimize, maximize")
    if st.trials < 1 or not st.seeds:
        raise UsageError(f"study {st.name}: trials: a positive integer; seeds: a non-empty list")
    return st


def quick(st: SearchStudy, extra: list[str]) -> list[str]:
    """Apply ``study.seeds=N`` (the first N search seeds) and ``study.trials=N`` (trials per
    sweep) from ``extra``; the rest (the trials' overrides)."""
    rest = []
    for o in extra:
        key, _, value = o.partition("=")
        if key not in ("study.seeds", "study.trials"):
            if key.startswith("study."):
                raise UsageError(f"{key}: unknown; allowed: study.seeds, study.trials")
            rest.append(o)
        elif not value.isdigit() or int(value) < 1:
            raise UsageError(f"{key}={value}: allowed: a positive integer")
        elif key == "study.seeds":
            st.seeds = st.seeds[: int(value)]
        else:
            st.trials = int(value)
    return rest


def sweep_dir(out: Path, sampler: str, seed: int) -> Path:
    return out / f"{sampler}-s{seed}"


def sweep_args(st: SearchStudy, sampler: str, seed: int, extra: list[str], out: Path) -> list[str]:
    """The ``dlx train -m`` arguments of one sweep."""
    return [
        "-m",
        "hydra/sweeper=dlx_optuna",
        f"hydra/sweeper/sampler={sampler}",
        f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweeper.n_trials={st.trials}",
        f"hydra.sweeper.direction={st.direction}",
        *st.samplers[sampler],
        *st.overrides,
        *extra,
        f"hydra.sweep.dir={sweep_dir(out, sampler, seed)}",
    ]


def trials(folder: Path) -> list[dict[str, Any]]:
    """A finished sweep's trials in the order they ran (``sweep.json``; none if missing)."""
    file = folder / "sweep.json"
    if not file.is_file():
        return []
    return sorted(json.loads(file.read_text())["trials"], key=lambda t: t["number"])


def objectives(folder: Path) -> list[float | None]:
    """Each trial's objective in order (None: failed or diverged)."""
    return [t.get("objective") for t in trials(folder)]


def best_so_far(values: list[float | None], higher: bool) -> list[float]:
    """The best objective after each trial (nan before the first that has one)."""
    out, best = [], math.nan
    for v in values:
        if v is not None and math.isfinite(v):
            better = v > best if higher else v < best
            best = v if math.isnan(best) or better else best
        out.append(best)
    return out


def trials_to(values: list[float | None], target: float, higher: bool) -> tuple[int, bool]:
    """The first trial (1-based) whose objective reached ``target`` and True, or the trials
    run and False (never: censored, as the log-rank test reads it)."""
    for i, v in enumerate(values, 1):
        if v is not None and (v >= target if higher else v <= target):
            return i, True
    return len(values), False
