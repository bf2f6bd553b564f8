"""The significance tests behind ``dlx study``'s verdicts, one per kind of claim (scipy and
statsmodels do the distributions):

- two groups on a metric: Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) with the
  difference of means, its 95% Welch confidence interval and Hedges' g;
- a group against a number: the one-sample t-test;
- a share (``finished`` runs): Fisher's exact test (against a number: the binomial test);
- "epochs to reach a target", where a run that never reached it is right-censored at the
  epochs it ran: the log-rank test (``scipy.stats.logrank`` on ``CensoredData``).

Every test is one-sided and run both ways: ``p_claim`` in the claimed direction, ``p_other``
the other way. A ``shift`` moves the null hypothesis: the claim is ``a - b > shift`` (higher
is better) or ``a - b < shift`` (lower is better) -- a ratio claim passes log values and
``log(factor)``, a non-inferiority claim ``-margin``. ``seeds`` is the runs per group a power
analysis (statsmodels) asks for to detect the observed difference with 80% power at ``alpha``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: the power a recommended number of seeds aims for
POWER = 0.8
#: the most seeds a power analysis reports (beyond it: "more than")
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Result:
    """One claim's test at one look."""

    test: str  # its name, as shown: "Welch t-test"
    p_claim: float  # one-sided, in the claimed direction (1 where untestable)
    p_other: float  # one-sided, the other way
    diff: float  # the estimate: mean(a) - mean(b) (a ratio when ``log``), share difference …
    ci: tuple[float, float]  # its 95% confidence interval
    g: float | None  # Hedges' g (None: not a mean difference)
    n: tuple[int, ...]  # runs per group (one entry against a number)
    seeds: int | None  # per group for 80% power; None: no difference to detect
    log: bool = False  # diff and ci are ratios (the test ran on logs)


@contextmanager
def _quiet() -> Iterator[None]:
    """No warnings from tests on identical or too few values: they come out nan, untestable."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _alternatives(higher: bool) -> tuple[str, str]:
    return ("greater", "less") if higher else ("less", "greater")


def _p(value: float) -> float:
    return 1.0 if not math.isfinite(value) else float(value)


def seeds_for(power, effect: float, alpha: float, **kw) -> int | None:
    """The fewest runs per group (2 to ``MAX_SEEDS``) at which statsmodels' ``power`` object
    gives a one-sided test at ``alpha`` 80% power to detect ``effect``; None: no effect, or
    more than ``MAX_SEEDS``."""
    if not effect or not math.isfinite(effect):
        return None
    ns = np.arange(2, MAX_SEEDS + 1)
    with np.errstate(all="ignore"):
        reached = power.power(abs(effect), ns, alpha, alternative="larger", **kw) >= POWER
    return int(ns[np.argmax(reached)]) if reached.any() else None


def hedges_g(a: np.ndarray, b: np.ndarray) -> float | None:
    """Hedges' g of ``a - b`` (bias-corrected standardized mean difference)."""
    from statsmodels.stats.meta_analysis import effectsize_smd

    if len(a) < 2 or len(b) < 2:
        return None
    sd = math.sqrt(
        ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    )
    if sd == 0:
        return None
    g, _ = effectsize_smd(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b))
    return float(g)


def welch(
    a: Sequence[float],
    b: Sequence[float],
    higher: bool,
    alpha: float,
    shift: float = 0.0,
    log: bool = False,
) -> Result:
    """Welch's t-test of ``a`` against ``b`` (on logs when ``log``; ``shift`` on that scale)."""
    from statsmodels.stats.power import TTestIndPower

    x, y = np.asarray(a, float), np.asarray(b, float)
    if log:
        x, y = np.log(x), np.log(y)
    claim, other = _alternatives(higher)
    with _quiet():
        p_claim = stats.ttest_ind(x, y + shift, equal_var=False, alternative=claim).pvalue
        p_other = stats.ttest_ind(x, y + shift, equal_var=False, alternative=other).pvalue
        two = stats.ttest_ind(x, y, equal_var=False)
        ci = two.confidence_interval(0.95) if len(x) > 1 and len(y) > 1 else (math.nan, math.nan)
    diff, lo, hi = float(x.mean() - y.mean()), float(ci[0]), float(ci[1])
    if log:
        diff, lo, hi = math.exp(diff), math.exp(lo), math.exp(hi)
    effect = hedges_g(x, y + shift)
    seeds = seeds_for(TTestIndPower(), effect, alpha)
    return Result(
        "Welch t-test",
        _p(p_claim),
        _p(p_other),
        diff,
        (lo, hi),
        hedges_g(x, y),
        (len(x), len(y)),
        seeds,
        log,
    )


def one_sample(
    a: Sequence[float],
    value: float,
    higher: bool,
    alpha: float,
    shift: float = 0.0,
    log: bool = False,
) -> Result:
    """The one-sample t-test of ``a`` against the number ``value``."""
    from statsmodels.stats.power import TTestPower

    x, ref = np.asarray(a, float), float(value)
    if log:
        x, ref = np.log(x), math.log(ref)
    claim, other = _alternatives(higher)
    with _quiet():
        p_claim = stats.ttest_1samp(x, ref + shift, alternative=claim).pvalue
        p_other = stats.ttest_1samp(x, ref + shift, alternative=other).pvalue
        ci = stats.ttest_1samp(x, ref).confidence_interval(0.95) if len(x) > 1 else (math.nan,) * 2
    diff, lo, hi = float(x.mean() - ref), float(ci[0]) - ref, float(ci[1]) - ref
    if log:
        diff, lo, hi = math.exp(diff), math.exp(lo), math.exp(hi)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    correction = 1 - 3 / (4 * (len(x) - 1) - 1) if len(x) > 1 else math.nan  # Hedges' J, df n-1
    g = (x.mean() - ref) / sd * correction if sd > 0 else None
    effect = (x.mean() - ref - shift) / sd if sd > 0 else 0.0
    seeds = seeds_for(TTestPower(), effect, alpha)
    g = None if g is None else float(g)
    return Result(
        "one-sample t-test", _p(p_claim), _p(p_other), diff, (lo, hi), g, (len(x),), seeds, log
    )


def fisher(a: Sequence[bool], b: Sequence[bool], higher: bool, alpha: float) -> Result:
    """Fisher's exact test of the share of ``a`` against ``b``'s, the difference of the
    shares with Newcombe's 95% interval, Cohen's h for the power analysis."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize

    ka, na, kb, nb = int(sum(a)), len(a), int(sum(b)), len(b)
    if na == 0 or nb == 0:
        return Result(
            "Fisher's exact test", 1.0, 1.0, math.nan, (math.nan,) * 2, None, (na, nb), None
        )
    table = [[ka, na - ka], [kb, nb - kb]]
    claim, other = _alternatives(higher)
    p_claim = stats.fisher_exact(table, alternative=claim).pvalue
    p_other = stats.fisher_exact(table, alternative=other).pvalue
    lo, hi = confint_proportions_2indep(ka, na, kb, nb, method="newcomb", compare="diff")
    h = proportion_effectsize(ka / na, kb / nb)
    seeds = seeds_for(NormalIndPower(), h, alpha)
    diff = ka / na - kb / nb
    return Result(
        "Fisher's exact test", _p(p_claim), _p(p_other), diff, (lo, hi), None, (na, nb), seeds
    )


def binomial(a: Sequence[bool], share: float, higher: bool, alpha: float) -> Result:
    """The exact binomial test of ``a``'s share against the number ``share``."""
    k, n = int(sum(a)), len(a)
    if n == 0:
        return Result("binomial test", 1.0, 1.0, math.nan, (math.nan,) * 2, None, (0,), None)
    claim, other = _alternatives(higher)
    res = stats.binomtest(k, n, share, alternative=claim)
    ci = stats.binomtest(k, n, share).proportion_ci(0.95)
    seeds = binomial_seeds(k / n, share, alpha)
    p_other = stats.binomtest(k, n, share, alternative=other).pvalue
    diff, lo, hi = k / n - share, ci.low - share, ci.high - share
    return Result("binomial test", _p(res.pvalue), _p(p_other), diff, (lo, hi), None, (n,), seeds)


def binomial_seeds(observed: float, share: float, alpha: float) -> int | None:
    """The fewest runs at which the exact one-sided binomial test at ``alpha`` (toward the
    observed share) has 80% power if ``observed`` is the truth; None: no difference, or
    more than ``MAX_SEEDS``."""
    if observed == share:
        return None
    ns = np.arange(2, MAX_SEEDS + 1)
    if observed > share:  # reject when k > isf: P(X > isf) <= alpha
        power = stats.binom.sf(stats.binom.isf(alpha, ns, share), ns, observed)
    else:  # reject when k <= crit, the largest k with P(X <= k) <= alpha
        low = stats.binom.ppf(alpha, ns, share)
        crit = np.where(stats.binom.cdf(low, ns, share) <= alpha, low, low - 1)
        power = np.where(crit >= 0, stats.binom.cdf(crit, ns, observed), 0.0)
    reached = power >= POWER
    return int(ns[np.argmax(reached)]) if reached.any() else None


def logrank(
    a: Sequence[tuple[int, bool]], b: Sequence[tuple[int, bool]], higher: bool, alpha: float
) -> Result:
    """The log-rank test on epochs to a target: each run is ``(epochs, reached)``; one that
    never reached it is right-censored at the epochs it ran. ``higher`` False: the claim is
    that ``a`` reaches it sooner. The estimate is the difference of the Kaplan-Meier median
    epochs (nan where a median is "never"); seeds: Welch's power analysis with "never"
    counted one epoch past the run's end (an approximation: the log-rank test has no
    closed-form power on so few runs)."""
    claim, other = ("less", "greater") if higher else ("greater", "less")  # failure = reaching
    if not a or not b or not any(r for _, r in [*a, *b]):
        approx = welch([e + (not r) for e, r in a], [e + (not r) for e, r in b], higher, alpha)
        return Result(
            "log-rank test",
            1.0,
            1.0,
            math.nan,
            (math.nan,) * 2,
            None,
            (len(a), len(b)),
            approx.seeds,
        )
    x, y = _censored(a), _censored(b)
    with _quiet():
        p_claim = stats.logrank(x, y, alternative=claim).pvalue
        p_other = stats.logrank(x, y, alternative=other).pvalue
    approx = welch([e + (not r) for e, r in a], [e + (not r) for e, r in b], higher, alpha)
    diff = km_median(a) - km_median(b)
    return Result(
        "log-rank test",
        _p(p_claim),
        _p(p_other),
        diff,
        (math.nan,) * 2,
        None,
        (len(a), len(b)),
        approx.seeds,
    )


def _censored(runs: Sequence[tuple[int, bool]]) -> stats.CensoredData:
    return stats.CensoredData(
        uncensored=[e for e, r in runs if r], right=[e for e, r in runs if not r]
    )


def km_median(runs: Sequence[tuple[int, bool]]) -> float:
    """The Kaplan-Meier median epochs to the target; inf ("never") when fewer than half
    the runs are known to reach it."""
    if not runs:
        return math.nan
    if not any(r for _, r in runs):
        return math.inf
    sf = stats.ecdf(_censored(runs)).sf
    below = sf.quantiles[sf.probabilities <= 0.5]
    return float(below.min()) if len(below) else math.inf


def epochs_text(runs: Sequence[tuple[int, bool]]) -> str:
    """Epochs to a target as the table, the verdicts and the figure show them: the
    Kaplan-Meier median and every run, ``never`` for one that did not reach it."""
    if not runs:
        return "-"
    median = km_median(runs)
    each = sorted(runs, key=lambda er: (not er[1], er[0]))
    shown = ", ".join(str(e) if r else "never" for e, r in each)
    return f"median {'never' if math.isinf(median) else f'{median:g}'} ({shown})"
