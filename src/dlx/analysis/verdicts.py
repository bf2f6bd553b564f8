"""A study's verdicts: each claim's runs, its significance test (``dlx.analysis.stats``) at
every look, the decision (``dlx.analysis.sequential``: Holm across claims, α spent across
looks) and the line that says it.

Which test: ``finished`` -> Fisher's exact test (a number: the binomial test);
``epochs_to_target`` -> the log-rank test, a run that never reached the target censored;
any other metric -> Welch's t-test (a number: the one-sample t-test), on log values when the
claim has a ``factor`` (the null: the ratio is ``factor``), against ``-margin`` when it has a
``margin`` (non-inferiority: ``better`` is not worse than ``than`` by more than the margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dlx.analysis import sequential, stats
from dlx.errors import UsageError

if TYPE_CHECKING:
    from dlx.analysis.records import Report, RunRecord
    from dlx.analysis.study import Claim, Study


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict and the test it rests on (at the look that settled it, else the
    last look)."""

    word: str
    result: stats.Result
    look: int  # 0-based
    looks: int  # planned
    p_holm: float | None  # Holm-adjusted p of the verdict's direction (one look only)
    texts: tuple[str, str]  # each side's figures as shown (the number for a baseline)


def higher_is_better(claim: Claim) -> bool:
    """The claim's direction: its own, else lower for losses, errors and epochs."""
    from dlx.analysis.study import EPOCHS, FINISHED
    from dlx.engine.monitor import resolve_mode

    if claim.higher_is_better is not None:
        return claim.higher_is_better
    if claim.metric == FINISHED:
        return True
    return claim.metric != EPOCHS and resolve_mode(claim.metric, "auto") == "max"


def group_runs(report: Report, study: Study, label: str, seeds: set[int]) -> list[RunRecord]:
    """Group ``label``'s runs whose seed is in ``seeds`` (every run, failed ones too)."""
    group = next((g for g in report.groups if g.label == label), None)
    if group is None:
        labels = ", ".join(g.label for g in report.groups)
        raise UsageError(f"study {study.name}: no group {label!r}; the groups: {labels}")
    return [r for r in group.runs if _seed(r) in seeds]


def _seed(r: RunRecord) -> int | None:
    value = r.overrides.get("trainer.seed") or r.setting("trainer.seed")
    return int(value) if value.lstrip("-").isdigit() else None


def epochs(runs: list[RunRecord], study: Study) -> list[tuple[int, bool]]:
    """Each counted run's epochs to the study's target and whether it reached it (one that
    did not is censored at the epochs it ran)."""
    from dlx.status import COUNTED

    assert study.target is not None
    target, metric = float(study.target["value"]), study.target.get("metric")
    return [r.reached(target, metric) for r in runs if r.status in COUNTED]


def measure(report: Report, study: Study, claim: Claim, seeds: set[int]) -> Verdict:
    """The claim's test on the runs of ``seeds`` (a verdict still ``inconclusive``)."""
    from dlx.analysis.study import EPOCHS, FINISHED

    a = group_runs(report, study, claim.better, seeds)
    b = [] if not isinstance(claim.than, str) else group_runs(report, study, claim.than, seeds)
    test = {FINISHED: _shares, EPOCHS: _epochs}.get(claim.metric, _means)
    res, texts = test(study, claim, a, b)
    return Verdict(sequential.INCONCLUSIVE, res, 0, 1, None, texts)


def _shares(
    study: Study, claim: Claim, a: list[RunRecord], b: list[RunRecord]
) -> tuple[stats.Result, tuple[str, str]]:
    """Fisher's exact test on the runs that finished (the binomial test against a number)."""
    from dlx.analysis.study import FINISHED_STATUSES

    fa, fb = [r.status in FINISHED_STATUSES for r in a], [r.status in FINISHED_STATUSES for r in b]
    higher = higher_is_better(claim)
    if not isinstance(claim.than, str):
        res = stats.binomial(fa, float(claim.than), higher, study.alpha)
        return res, (f"{sum(fa)}/{len(fa)} finished", str(claim.than))
    res = stats.fisher(fa, fb, higher, study.alpha)
    return res, (f"{sum(fa)}/{len(fa)} finished", f"{sum(fb)}/{len(fb)} finished")


def _epochs(
    study: Study, claim: Claim, a: list[RunRecord], b: list[RunRecord]
) -> tuple[stats.Result, tuple[str, str]]:
    """The log-rank test on epochs to the target, "never" censored."""
    ea, eb = epochs(a, study), epochs(b, study)
    res = stats.logrank(ea, eb, higher_is_better(claim), study.alpha)
    return res, (stats.epochs_text(ea), stats.epochs_text(eb))


def _means(
    study: Study, claim: Claim, a: list[RunRecord], b: list[RunRecord]
) -> tuple[stats.Result, tuple[str, str]]:
    """Welch's t-test (a number: the one-sample test) on the counted runs' figures; on logs
    against the claim's ``factor``, or against its non-inferiority ``margin``."""
    from dlx.analysis.study import run_value
    from dlx.status import COUNTED

    def values(runs: list[RunRecord]) -> list[float]:
        got = [run_value(r, claim.metric, study) for r in runs if r.status in COUNTED]
        return [v for v in got if v is not None]

    va, vb = values(a), values(b)
    baseline = not isinstance(claim.than, str)
    higher, log = higher_is_better(claim), claim.factor > 1
    if log and min([*va, *vb, float(claim.than) if baseline else 1.0], default=1.0) <= 0:
        raise UsageError(f"study {study.name}: claim {claim.text!r}: factor needs positive values")
    sign = 1 if higher else -1
    shift = sign * math.log(claim.factor) if log else -sign * claim.margin
    if baseline:
        res = stats.one_sample(va, float(claim.than), higher, study.alpha, shift, log)
        return res, (_ms(va), str(claim.than))
    return stats.welch(va, vb, higher, study.alpha, shift, log), (_ms(va), _ms(vb))


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{float(np.mean(values)):.4g} ± {sd:.2g}"


def judge(
    report: Report, study: Study, order: list[int], ns: list[int], planned: list[int]
) -> list[Verdict]:
    """Every claim's verdict after the looks at ``ns`` seeds per group (the first ``n`` of
    ``order`` at each), of the ``planned`` looks."""
    from statsmodels.stats.multitest import multipletests

    per_look = [[measure(report, study, c, set(order[:n])) for c in study.claims] for n in ns]
    p_claim = np.array([[v.result.p_claim for v in row] for row in per_look])
    p_other = np.array([[v.result.p_other for v in row] for row in per_look])
    code, at = sequential.settle(p_claim, p_other, sequential.fractions_of(planned), study.alpha)
    holm = None
    if len(planned) == 1:  # Holm-adjusted p of each direction (one look: plain Holm)
        holm = [multipletests(p[0], study.alpha, method="holm")[1] for p in (p_claim, p_other)]
    out = []
    for j in range(len(study.claims)):
        look = int(at[j]) if at[j] >= 0 else len(ns) - 1
        v = per_look[look][j]
        p_holm = None if holm is None else float(holm[int(code[j]) == sequential.DOWN][j])
        out.append(
            Verdict(sequential.WORDS[int(code[j])], v.result, look, len(planned), p_holm, v.texts)
        )
    return out


def _num(x: float, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "never" if x == math.inf or x == -math.inf else "-"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def line(study: Study, claim: Claim, v: Verdict) -> str:
    """The verdict line: the word, the claim, the test, the figures, p, CI, g and n."""
    from dlx.analysis.study import EPOCHS

    r = v.result
    what = claim.metric if claim.metric != EPOCHS else f"epochs to {target_text(study)}"
    than = f"the baseline {claim.than}" if not isinstance(claim.than, str) else claim.than
    if isinstance(claim.than, str):
        than += f" {v.texts[1]}"
    parts = [f"{r.test}, one-sided", f"{what}: {claim.better} {v.texts[0]} vs {than}"]
    parts += _estimate(r, claim)
    other = v.word == sequential.CONTRADICTED
    p = f"p={r.p_other:.3g} the other way" if other else f"p={r.p_claim:.3g}"
    if v.p_holm is not None and len(study.claims) > 1:
        p += f" (Holm-adjusted {v.p_holm:.3g})"
    parts.append(f"{p}, α={study.alpha:g}")
    if r.g is not None:
        parts.append(f"g={r.g:.2f}")
    parts.append("n=" + "/".join(str(n) for n in r.n))
    if v.looks > 1:
        parts.append(f"look {v.look + 1} of {v.looks}")
    if v.word == sequential.INCONCLUSIVE:
        parts.append(needs(r))
    return f"{v.word}: {claim.text} ({'; '.join(parts)})"


def _estimate(r: stats.Result, claim: Claim) -> list[str]:
    """The estimate and its 95% CI as the line shows them (none for epochs: the medians and
    every run are shown instead)."""
    if r.log:
        ci = f"95% CI {_num(r.ci[0])} to {_num(r.ci[1])}"
        return [f"ratio {_num(r.diff)} ({ci}; claimed {claim.factor:g}x)"]
    if r.test == "log-rank test":
        return []
    ci = f"95% CI {_num(r.ci[0], True)} to {_num(r.ci[1], True)}"
    margin = f"; margin {claim.margin:g}" if claim.margin else ""
    return [f"difference {_num(r.diff, True)} ({ci}{margin})"]


def needs(r: stats.Result) -> str:
    """What would settle an inconclusive claim: the power analysis's seeds per group."""
    if min(r.n, default=0) < 2:
        return "too few runs to test (fewer than 2 in a group)"
    if r.seeds:
        return f"80% power needs {r.seeds} seeds per group"
    if math.isfinite(r.diff) and r.diff != (1.0 if r.log else 0.0):
        return f"80% power needs more than {stats.MAX_SEEDS} seeds per group"
    return "no difference seen"


def target_text(study: Study) -> str:
    assert study.target is not None
    return f"{study.target.get('metric', 'the monitor')} {study.target['value']}"
