"""``dlx study NAME``: a textbook claim as a one-command experiment, and its verdict.

A study is data: a YAML in the config tree's ``study/`` folder (or ``DIR/study/`` of a user's
``-cd DIR``) naming a grid of overrides, the seeds, the fixed overrides of its budget, the
metrics, an optional target, and its claims as comparisons between two groups. ``dlx study
NAME [OVERRIDES]`` runs the grid as one sweep over the seeds into
``outputs/studies/NAME-<time>/`` (or ``hydra.sweep.dir=…``, which also resumes one), writes the
report (``dlx.analysis.report``) and prints one verdict per claim: ``supported``,
``contradicted`` or ``inconclusive`` by a significance test (``dlx.analysis.verdicts``), Holm's
correction across claims at the study's ``alpha``. ``study.until_settled=true`` adds seeds in
rounds with α spent across the looks (``dlx.analysis.settle``, ``dlx.analysis.sequential``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.errors import UsageError
from dlx.status import SUCCEEDED
from dlx.suggest import allowed

if TYPE_CHECKING:
    from dlx.analysis.records import RunRecord

#: the packaged studies
STUDIES = Path(__file__).parents[1] / "conf" / "study"
#: a claim's metric meaning "epochs until the study's target is reached" (lower is better)
EPOCHS = "epochs_to_target"
#: a claim's metric meaning "the fraction of runs that finished" (did not diverge or fail)
FINISHED = "finished"
#: what a run's status counts as finished
FINISHED_STATUSES = SUCCEEDED


@dataclass
class Claim:
    """``better`` beats ``than`` on ``metric``. ``than`` is a group, or a number (a baseline:
    the 0.167 MSE of predicting the mean). ``metric`` is a run's metric (``val/acc``), the
    difference or ratio of two (``train/acc - val/acc``, ``grads/norm/fc1 / grads/norm/out``),
    ``epochs_to_target`` or ``finished``; ``last:val/acc`` is the final epoch's figure (the
    best epoch's otherwise). With ``factor`` the margin must be that ratio too
    ("orders of magnitude": 10)."""

    text: str
    better: str  # a group, as its overrides read in the report: "optim=momentum"
    than: str | float
    metric: str = EPOCHS
    higher_is_better: bool | None = None  # None: lower for losses, errors, epochs; else higher
    factor: float = 1.0
    margin: float = 0.0  # non-inferiority: not worse than ``than`` by more than this


@dataclass
class Study:
    name: str
    claim: str
    source: str
    budget: str
    grid: dict[str, list[Any]]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    overrides: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    target: dict[str, Any] | None = None  # {metric: train/loss, value: 0.3}
    claims: list[Claim] = field(default_factory=list)
    alpha: float = 0.05  # the family-wise error rate of the study's verdicts (Holm)
    ensemble: int = 0  # > 1: also each group's ensembles of this many runs (ensemble_study)
    ensemble_metric: str = "test/acc"


def find(name: str, config_dirs: list[Path]) -> Path:
    for folder in [*(Path(d) / "study" for d in config_dirs), STUDIES]:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    hint = allowed(name, names(config_dirs))
    raise UsageError(f"study {name}: unknown; {hint}")


def names(config_dirs: list[Path]) -> list[str]:
    folders = [*(Path(d) / "study" for d in config_dirs), STUDIES]
    return sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")})


def load(path: Path) -> Study:
    """The study in ``path``, checked: one line naming the key when something is off."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"study {path.stem}: not valid YAML ({str(e).splitlines()[0]})") from None
    known = set(Study.__dataclass_fields__)
    for key in data:
        if key not in known:
            hint = allowed(key, sorted(known), "allowed")
            raise UsageError(f"study {path.stem}: {key}: unknown key; {hint}")
    try:
        claims = [Claim(**c) for c in data.pop("claims", [])]
        study = Study(**data, claims=claims)
    except TypeError as e:
        raise UsageError(f"study {path.stem}: {e}") from None
    if not study.grid or not study.claims:
        raise UsageError(f"study {path.stem}: needs a grid and at least one claim")
    for c in study.claims:
        if (" - " in c.metric or " / " in c.metric) and c.higher_is_better is None:
            raise UsageError(
                f"study {path.stem}: claim {c.text!r}: metric {c.metric!r} is a difference "
                "or ratio; say higher_is_better: true or false"
            )
    for c in study.claims:
        _check_claim(study.name, c)
    if not 0 < study.alpha < 1:
        raise UsageError(f"study {path.stem}: alpha: {study.alpha}; allowed: a number in (0, 1)")
    if any(c.metric == EPOCHS for c in study.claims) and not study.target:
        raise UsageError(f"study {path.stem}: claims on {EPOCHS} need a target")
    return study


def _check_claim(name: str, c: Claim) -> None:
    """One line for a claim the tests cannot take."""
    if c.factor < 1 or c.margin < 0 or (c.factor > 1 and c.margin):
        raise UsageError(
            f"study {name}: claim {c.text!r}: factor {c.factor}, margin {c.margin}; allowed: "
            "a factor >= 1 (a ratio claim) or a margin >= 0 (non-inferiority), not both"
        )
    if c.metric == EPOCHS and not isinstance(c.than, str):
        raise UsageError(
            f"study {name}: claim {c.text!r}: {EPOCHS} compares two groups; than: a group"
        )


def hydra_value(v: Any) -> str:
    """A YAML value as a Hydra override writes it: ``null``, ``true``, ``[64,64]``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    return str(v)


def sweep_args(study: Study, extra: list[str], out: Path) -> list[str]:
    """The ``dlx train -m`` arguments of the study's sweep."""
    grid = [f"{k}={','.join(hydra_value(v) for v in vs)}" for k, vs in study.grid.items()]
    seeds = "trainer.seed=" + ",".join(str(s) for s in study.seeds)
    return ["-m", *grid, seeds, *study.overrides, *extra, f"hydra.sweep.dir={out}"]


def run_value(r: RunRecord, metric: str, study: Study) -> float | None:
    """One run's figure for a claim's ``metric`` (see ``Claim``); None where it has none.
    Epochs to the target: a run that never reached it counts one epoch more than it ran."""
    if metric == FINISHED:
        return float(r.status in FINISHED_STATUSES)
    for op in (" / ", " - "):
        if op in metric:
            left, right = (run_value(r, m.strip(), study) for m in metric.split(op, 1))
            if left is None or right is None or (op == " / " and right == 0):
                return None
            return left / right if op == " / " else left - right
    if metric != EPOCHS:
        return r.value(metric)
    assert study.target is not None
    reached = r.epochs_to(float(study.target["value"]), study.target.get("metric"))
    return float(reached if reached is not None else len(r.rows) + 1)  # see verdicts.epochs


#: ``study.KEY=VALUE`` options of ``dlx study NAME`` (not Hydra overrides) and their defaults
OPTIONS = {"until_settled": False, "max_seeds": 10, "step": 2, "alpha": None, "seeds": None}


def options(study: Study, extra: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The ``study.*`` options among ``extra`` (checked: one line naming the key), and the
    rest (the sweep's overrides)."""
    chosen, rest = dict(OPTIONS), []
    for o in extra:
        key, _, value = o.partition("=")
        if not key.startswith("study."):
            rest.append(o)
            continue
        name = key.removeprefix("study.")
        if name not in OPTIONS:
            hint = allowed(key, [f"study.{k}" for k in OPTIONS], "allowed")
            raise UsageError(f"{key}: unknown; {hint}")
        chosen[name] = _option(key, name, value, len(study.seeds))
    if chosen["alpha"] is not None:
        study.alpha = chosen["alpha"]
    if chosen["seeds"] is not None:  # the study's first N seeds (a quick look)
        study.seeds = study.seeds[: chosen["seeds"]]
    if not chosen["until_settled"]:
        chosen["max_seeds"] = len(study.seeds)
    elif chosen["max_seeds"] < len(study.seeds):
        n = len(study.seeds)
        raise UsageError(
            f"study.max_seeds={chosen['max_seeds']}: below the study's {n} seeds; "
            f"allowed: an integer >= {n}"
        )
    return chosen, rest


def _option(key: str, name: str, value: str, seeds: int) -> Any:
    if name == "until_settled":
        if value not in ("true", "false"):
            raise UsageError(f"{key}={value}: allowed: true or false")
        return value == "true"
    if name == "alpha":
        try:
            alpha = float(value)
        except ValueError:
            alpha = -1.0
        if not 0 < alpha < 1:
            raise UsageError(f"{key}={value}: allowed: a number in (0, 1)")
        return alpha
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{key}={value}: allowed: a positive integer")
    return int(value)


def seed_order(study: Study, max_seeds: int) -> list[int]:
    """The study's seeds, then new ones (after its largest) up to ``max_seeds`` per group."""
    more = range(max(study.seeds) + 1, max(study.seeds) + 1 + max_seeds - len(study.seeds))
    return [*study.seeds, *more]
