"""The verdict engine of ``dlx study``: each test against scipy's own results on fixed numbers,
Holm's order against statsmodels, the alpha-spending boundaries against published values, and
simulated studies (no training) showing the error rate under repeated looks and the power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from dlx.analysis import sequential, stats
from dlx.analysis.sequential import DOWN, UP

A = [0.912, 0.905, 0.921, 0.899]
B = [0.861, 0.874, 0.850]


def test_welch_is_scipys_one_sided_test_with_the_welch_interval_and_hedges_g():
    r = stats.welch(A, B, higher=True, alpha=0.05)
    ref = sps.ttest_ind(A, B, equal_var=False, alternative="greater")
    assert r.p_claim == pytest.approx(ref.pvalue) and r.p_other == pytest.approx(1 - ref.pvalue)
    lo, hi = sps.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert r.ci == pytest.approx((lo, hi)) and r.diff == pytest.approx(np.mean(A) - np.mean(B))
    # the interval by hand: Welch-Satterthwaite df, t quantile
    va, vb = np.var(A, ddof=1) / 4, np.var(B, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert r.ci == pytest.approx((r.diff - half, r.diff + half))
    pooled = math.sqrt((3 * np.var(A, ddof=1) + 2 * np.var(B, ddof=1)) / 5)
    assert r.g == pytest.approx(r.diff / pooled * (1 - 3 / (4 * 7 - 9)), rel=1e-6)  # Hedges' J
    assert r.n == (4, 3) and r.test == "Welch t-test"
    lower = stats.welch(A, B, higher=False, alpha=0.05)  # a loss: the claim is the other way
    assert lower.p_claim == pytest.approx(r.p_other) and lower.p_other == pytest.approx(r.p_claim)


def test_one_sample_fisher_binomial_and_logrank_are_scipys():
    r = stats.one_sample(B, 0.9, higher=False, alpha=0.05)
    assert r.p_claim == pytest.approx(sps.ttest_1samp(B, 0.9, alternative="less").pvalue)
    ci = sps.ttest_1samp(B, 0.9).confidence_interval(0.95)
    assert r.ci == pytest.approx((ci.low - 0.9, ci.high - 0.9)) and r.n == (3,)
    f = stats.fisher([1, 1, 1, 1, 0], [1, 0, 0, 0, 0], higher=True, alpha=0.05)
    table = [[4, 1], [1, 4]]
    assert f.p_claim == pytest.approx(sps.fisher_exact(table, alternative="greater").pvalue)
    assert f.p_other == pytest.approx(sps.fisher_exact(table, alternative="less").pvalue)
    assert f.diff == pytest.approx(0.6)
    b = stats.binomial([1, 1, 1, 1, 1], 0.5, higher=True, alpha=0.05)
    assert b.p_claim == pytest.approx(sps.binomtest(5, 5, 0.5, alternative="greater").pvalue)
    fast, slow = [(2, True), (3, True), (3, True)], [(5, True), (10, False), (10, False)]
    r = stats.logrank(fast, slow, higher=False, alpha=0.05)
    x = sps.CensoredData(uncensored=[2, 3, 3])
    y = sps.CensoredData(uncensored=[5], right=[10, 10])
    assert r.p_claim == pytest.approx(sps.logrank(x, y, alternative="greater").pvalue)
    assert r.p_claim < 0.05 < r.p_other


def test_never_is_censored_not_a_number_and_reads_the_same_everywhere():
    runs = [(3, True), (10, False), (4, True)]
    assert stats.epochs_text(runs) == "median 4 (3, 4, never)"
    assert stats.epochs_text([(3, True), (10, False), (10, False)]) == (
        "median never (3, never, never)"
    )
    # batchnorm at 3 epochs: "3 (2 never)" against a group that reached it later is no win
    r = stats.logrank(
        [(3, True), (3, False), (3, False)], [(2, True), (3, True), (3, True)], False, 0.05
    )
    assert r.p_claim > 0.5


def test_a_ratio_claim_is_the_test_on_logs_against_the_factor():
    small, big = [0.001, 0.0013, 0.0008], [0.1, 0.12, 0.09]
    r = stats.welch(small, big, higher=False, alpha=0.05, shift=-math.log(10), log=True)
    ref = sps.ttest_ind(
        np.log(small), np.log(big) - math.log(10), equal_var=False, alternative="less"
    )
    assert r.p_claim == pytest.approx(ref.pvalue) and r.p_claim < 0.01
    assert r.diff == pytest.approx(math.exp(np.mean(np.log(small)) - np.mean(np.log(big))))
    five = stats.welch([0.02, 0.021, 0.019], big, False, 0.05, shift=-math.log(10), log=True)
    assert five.p_other < 0.05  # only 5x: significantly short of the claimed 10x


def test_holm_with_one_look_is_statsmodels_holm():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.012])
    code, at = sequential.settle(p[None, :], 1 - p[None, :], (1.0,), 0.05)
    assert list(code == UP) == list(multipletests(p, 0.05, method="holm")[0])
    assert list(at[code == UP]) == [0, 0, 0]  # 0.005 <= .05/6, 0.01 <= .05/5, 0.012 <= .05/4
    code, _ = sequential.settle(1 - p[None, :], p[None, :], (1.0,), 0.05)
    assert list(code == DOWN) == list(multipletests(p, 0.05, method="holm")[0])


def test_obrien_fleming_spending_boundaries_match_published_values():
    # Lan-DeMets O'Brien-Fleming-type spending, 5 equally spaced looks, one-sided 0.025
    # (gsDesign, sfLDOF): z = 4.877, 3.357, 2.680, 2.290, 2.031
    zs = sps.norm.isf(sequential.boundaries((0.2, 0.4, 0.6, 0.8, 1.0), 0.025))
    assert zs == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)
    assert sequential.boundaries((1.0,), 0.05) == pytest.approx((0.05,))
    assert sequential.looks(3, 10, 2) == [3, 5, 7, 9, 10] and sequential.looks(3, 3, 2) == [3]


def simulate(effect: float, ns: list[int], studies: int, seed: int, spend: bool = True):
    """Studies of two groups (normal noise, true difference ``effect`` sds) looked at after
    each round of ``ns`` seeds with Welch's test; each study's code and deciding look."""
    rng = np.random.default_rng(seed)
    a = rng.normal(effect, 1.0, (studies, ns[-1]))
    b = rng.normal(0.0, 1.0, (studies, ns[-1]))
    welch = [
        sps.ttest_ind(a[:, :n], b[:, :n], axis=1, equal_var=False, alternative="greater")
        for n in ns
    ]
    p = np.stack([w.pvalue for w in welch])[..., None]  # looks x studies x one claim
    fractions = sequential.fractions_of(ns) if spend else (1.0,) * len(ns)
    if not spend:  # every look at the full alpha: the naive way
        return ((p <= 0.05).any(axis=0))[:, 0]
    code, _ = sequential.settle(p, 1 - p, fractions, 0.05)
    return code[:, 0] == UP


def _at_most(rate: float, studies: int, alpha: float = 0.05) -> bool:
    """The observed rate is consistent with a true rate <= alpha (one-sided binomial test at
    0.001: a true 5% shows as 5.0 +- 0.3% in 5,000 studies)."""
    k = round(rate * studies)
    return sps.binomtest(k, studies, alpha, alternative="greater").pvalue > 0.001


def test_seeds_until_settled_holds_the_error_rate_under_repeated_looks_and_has_power():
    ns = sequential.looks(3, 10, 2)  # the default rounds: 3 seeds, 2 more a round, up to 10
    null = simulate(0.0, ns, 5000, seed=1).mean()
    assert null <= 0.055 and _at_most(null, 5000), null  # measured: 0.0448
    naive = simulate(0.0, ns, 5000, seed=1, spend=False).mean()
    assert naive > 0.09 and not _at_most(naive, 5000)  # testing each look at α: 0.109
    # Hedges' g = 1.5 (the population standardized difference): supported by max_seeds
    assert simulate(1.5, ns, 2000, seed=2).mean() >= 0.8  # measured: 0.93 (0.9265)


def test_the_fixed_n_test_holds_its_error_rate():
    for n in (3, 10):
        rate = simulate(0.0, [n], 5000, seed=3).mean()
        assert rate <= 0.055 and _at_most(rate, 5000), (
            n,
            rate,
        )  # measured: 0.044, 0.054 (true: 0.05)


def test_power_analysis_seeds_match_statsmodels():
    from statsmodels.stats.power import TTestIndPower

    a, b = np.array([1.0, 1.4, 0.9]), np.array([0.8, 1.2, 0.7])
    r = stats.welch(a, b, higher=True, alpha=0.05)
    g = stats.hedges_g(a, b)
    n = TTestIndPower().solve_power(g, alpha=0.05, power=0.8, alternative="larger")
    assert r.seeds == math.ceil(n)
    assert stats.binomial_seeds(1.0, 0.5, 0.05) == 5  # 5/5 is the first p below 0.05
    assert stats.welch([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], True, 0.05).seeds is None


def _runs(tmp_path, group: str, values: list[float | None], status: str = "completed"):
    """Scripted runs of ``optim=group``, one per seed: val/acc per epoch is ``value`` (None:
    a diverged run)."""
    from dlx.analysis.report import RunRecord

    out = []
    for seed, v in enumerate(values):
        state = status if v is not None else "diverged"
        rows = [{"epoch": e, "val/acc": (v or 0) * e / 3} for e in (1, 2, 3)]
        summary = {"status": state, "metrics": {} if v is None else {"val/acc": v}}
        overrides = {"optim": group, "trainer.seed": str(seed)}
        config = {"trainer": {"seed": seed}}
        out.append(RunRecord(tmp_path / f"{group}{seed}", overrides, state, summary, rows, config))
    return out


def _study(*claims, target=None):
    from dlx.analysis.study import Claim, Study

    return Study(
        "s",
        "c",
        "src",
        "b",
        {"optim": ["sgd", "adam"]},
        seeds=[0, 1, 2, 3],
        claims=[Claim(**c) for c in claims],
        target=target,
    )


def _report(tmp_path, adam, sgd):
    from dlx.analysis.report import Report, group_runs

    groups = group_runs([*_runs(tmp_path, "adam", adam), *_runs(tmp_path, "sgd", sgd)])
    return Report(["val/acc"], groups, None, [])


def test_judge_picks_the_test_by_claim_and_holm_adjusts_across_claims(tmp_path):
    from dlx.analysis.verdicts import judge, line

    report = _report(tmp_path, [0.91, 0.92, 0.90, 0.93], [0.80, 0.82, None, 0.81])
    study = _study(
        {"text": "adam wins", "better": "optim=adam", "than": "optim=sgd", "metric": "val/acc"},
        {"text": "all finish", "better": "optim=adam", "than": "optim=sgd", "metric": "finished"},
        {"text": "sgd wins", "better": "optim=sgd", "than": "optim=adam", "metric": "val/acc"},
        {"text": "fast", "better": "optim=adam", "than": "optim=sgd"},
        target={"metric": "val/acc", "value": 0.85},
    )
    v = judge(report, study, [0, 1, 2, 3], [4], [4])
    assert [x.word for x in v] == ["supported", "inconclusive", "contradicted", "supported"]
    welch = stats.welch([0.91, 0.92, 0.90, 0.93], [0.80, 0.82, 0.81], True, 0.05)
    assert v[0].result == welch and v[0].result.n == (4, 3)  # the diverged run has no val/acc
    assert v[1].result.test == "Fisher's exact test" and v[1].result.n == (4, 4)
    up = multipletests([x.result.p_claim for x in v], 0.05, "holm")[1]
    down = multipletests([x.result.p_other for x in v], 0.05, "holm")[1]
    assert [x.p_holm for x in v] == pytest.approx([up[0], up[1], down[2], up[3]])
    assert v[3].result.test == "log-rank test" and v[3].texts == (
        "median 3 (3, 3, 3, 3)",
        "median never (never, never, never)",
    )
    text = line(study, study.claims[0], v[0])
    assert text.startswith("supported: adam wins (Welch t-test, one-sided; val/acc: optim=adam")
    assert "95% CI" in text and "g=" in text and "n=4/3" in text and "Holm-adjusted" in text
    # the first two seeds only: a look of a sequential design at 2 of 4 seeds
    early = judge(report, study, [0, 1, 2, 3], [2], [2, 4])
    assert early[0].result.n == (2, 2) and early[0].looks == 2


def test_a_non_inferiority_margin_and_a_factor_move_the_null(tmp_path):
    from dlx.analysis.verdicts import judge

    report = _report(tmp_path, [0.90, 0.91, 0.905, 0.895], [0.91, 0.92, 0.915, 0.905])
    same = {
        "text": "adam is no worse",
        "better": "optim=adam",
        "than": "optim=sgd",
        "metric": "val/acc",
    }
    assert judge(report, _study(same), [0, 1, 2, 3], [4], [4])[0].word == "contradicted"
    within = judge(report, _study({**same, "margin": 0.05}), [0, 1, 2, 3], [4], [4])[0]
    assert within.word == "supported"  # 0.01 worse, well inside a 0.05 margin
    twice = {**same, "factor": 2.0}  # "adam's val/acc is 2x sgd's": far from it
    assert judge(report, _study(twice), [0, 1, 2, 3], [4], [4])[0].word == "contradicted"
