"""``dlx study NAME``: a textbook claim as a one-command experiment, and its verdict.

A study is data: a YAML in the config tree's ``study/`` folder (or ``DIR/study/`` of a user's
``-cd DIR``) naming a grid of overrides, the seeds, the fixed overrides of its budget, the
metrics, an optional target, and its claims as comparisons between two groups. ``dlx study
NAME [OVERRIDES]`` runs the grid as one sweep over the seeds into
``outputs/studies/NAME-<time>/`` (or ``hydra.sweep.dir=…``, which also resumes one), writes the
report (``dlx.analysis.report``) and prints one verdict per claim: ``supported`` when the claimed
group is better and the two groups' mean ± std intervals do not overlap, ``not supported``
when the other group is better by that margin, ``inconclusive`` when they overlap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlx.analysis.report import Report, RunRecord, mean_std
from dlx.errors import UsageError

#: the packaged studies
STUDIES = Path(__file__).parents[1] / "conf" / "study"
#: a claim's metric meaning "epochs until the study's target is reached" (lower is better)
EPOCHS = "epochs_to_target"
#: a claim's metric meaning "the fraction of runs that finished" (did not diverge or fail)
FINISHED = "finished"
#: what a run's status counts as finished
FINISHED_STATUSES = ("completed", "stopped_early")


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


def find(name: str, config_dirs: list[Path]) -> Path:
    for folder in [*(Path(d) / "study" for d in config_dirs), STUDIES]:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    raise UsageError(f"study {name}: unknown; choose one of: {', '.join(names(config_dirs))}")


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
            raise UsageError(f"study {path.stem}: {key}: unknown key; allowed: {sorted(known)}")
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
    if any(c.metric == EPOCHS for c in study.claims) and not study.target:
        raise UsageError(f"study {path.stem}: claims on {EPOCHS} need a target")
    return study


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
    return float(reached if reached is not None else len(r.rows) + 1)


def group_values(report: Report, label: str, study: Study, metric: str) -> tuple[float, float, int]:
    """Mean, std and n of ``metric`` over group ``label``'s runs (every run for ``finished``,
    the counted ones otherwise: a diverged run has no loss to average)."""
    group = next((g for g in report.groups if g.label == label), None)
    if group is None:
        labels = ", ".join(g.label for g in report.groups)
        raise UsageError(f"study {study.name}: no group {label!r}; the groups: {labels}")
    runs = group.runs if metric == FINISHED else group.counted
    return mean_std([v for r in runs if (v := run_value(r, metric, study)) is not None])


def verdict(
    a: tuple[float, float, int],
    b: tuple[float, float, int],
    higher_is_better: bool,
    factor: float = 1.0,
    baseline: bool = False,
) -> str:
    """``supported`` when ``a`` beats ``b`` and their mean ± std intervals do not overlap
    (and, with ``factor``, the better mean is that many times the other's), ``not
    supported`` when ``b`` beats ``a`` so or ``a`` falls short of the factor, ``inconclusive``
    otherwise, and when a group has fewer than two runs (no spread to judge by). A
    ``baseline`` ``b`` is a number: std 0, no runs."""
    (ma, sa, na), (mb, sb, nb) = a, b
    if na < 2 or (nb < 2 and not baseline):
        return "inconclusive"
    if abs(ma - mb) <= sa + sb:
        return "inconclusive"
    if (ma > mb) != higher_is_better:
        return "not supported"
    hi, lo = (ma, mb) if higher_is_better else (mb, ma)
    if factor > 1 and not (lo > 0 and hi / lo >= factor):
        return "not supported"
    return "supported"


def judge(study: Study, report: Report) -> list[str]:
    """One line per claim: the verdict and the numbers it rests on."""
    from dlx.engine.monitor import resolve_mode

    lines = []
    for c in study.claims:
        a = group_values(report, c.better, study, c.metric)
        baseline = isinstance(c.than, int | float)
        b = (float(c.than), 0.0, 1) if baseline else group_values(report, c.than, study, c.metric)
        higher = c.higher_is_better
        if higher is None:
            higher = c.metric == FINISHED or (
                c.metric != EPOCHS and resolve_mode(c.metric, "auto") == "max"
            )
        what = c.metric if c.metric != EPOCHS else f"epochs to {_target_text(study)}"
        than = f"the baseline {c.than}" if baseline else f"{c.than} {_ms(b)}"
        n = f"n={a[2]}" if baseline else f"n={a[2]}/{b[2]}"
        said = verdict(a, b, higher, c.factor, baseline)
        lines.append(f"{said}: {c.text} ({what}: {c.better} {_ms(a)} vs {than}, {n})")
    return lines


def _target_text(study: Study) -> str:
    assert study.target is not None
    return f"{study.target.get('metric', 'the monitor')} {study.target['value']}"


def _ms(v: tuple[float, float, int]) -> str:
    return f"{v[0]:.4g} ± {v[1]:.2g}" if v[2] else "-"


def run_study(name: str, extra: list[str], config_dirs: list[Path]) -> int:
    """Sweep, report, verdicts; written to ``OUT/verdicts.txt`` too. The sweep's exit code."""
    from dlx.analysis.report import run_report
    from dlx.engine.checkpoint import atomic_write
    from dlx.sweep.launch import train

    study = load(find(name, config_dirs))
    given = [o.split("=", 1)[1] for o in extra if o.startswith("hydra.sweep.dir=")]
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(given[0]) if given else Path("outputs/studies") / f"{name}-{stamp}"
    extra = [o for o in extra if not o.startswith("hydra.sweep.dir=")]
    cd = [a for d in config_dirs for a in ("-cd", str(d))]
    code = train([*cd, *sweep_args(study, extra, out)])
    target = study.target or {}
    report = run_report(
        out, list(study.grid), study.metrics or None, target.get("value"), target.get("metric")
    )
    lines = judge(study, report)
    text = "\n".join([f"study {name}: {study.claim}", *lines]) + "\n"
    atomic_write(out / "report" / "verdicts.txt", lambda f: f.write(text.encode()))
    md = (out / "report" / "report.md").read_text()
    head = f"## Verdicts ({study.source}; budget: {study.budget})\n\n"
    verdicts = head + "".join(f"- {line}\n" for line in lines)
    atomic_write(out / "report" / "report.md", lambda f: f.write((md + "\n" + verdicts).encode()))
    print(text, end="")
    return code


def print_list(config_dirs: list[Path]) -> None:
    """``dlx study list``: every study, its claim, source and default budget."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="studies", title_justify="left")
    for col in ("study", "claim", "source", "budget"):
        table.add_column(col)
    for n in names(config_dirs):
        st = load(find(n, config_dirs))
        table.add_row(n, st.claim, st.source, st.budget)
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(table)
