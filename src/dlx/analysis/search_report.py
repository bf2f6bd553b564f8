"""The report of a search study (``dlx.analysis.search_study``): best-so-far curves (mean and
band over the search seeds) per sampler, trials to the target and to the ``than`` sweep's
best value, the log-rank verdicts, and what makes the claim true or false on this objective:
how many distinct values of the important hyperparameter each sampler tried and where the
values that reached the target lie."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlx.analysis import ledger, sequential, stats
from dlx.analysis.search_study import best_so_far, objectives, sweep_dir, trials, trials_to

if TYPE_CHECKING:
    from dlx.analysis.search_study import SearchStudy

FIGURE = "best_so_far.png"


def curves(st: SearchStudy, out: Path) -> dict[str, list[list[float]]]:
    """Per sampler, each seed's best-so-far curve (seeds with no trials left out)."""
    higher = st.direction == "maximize"
    return {
        s: [
            best_so_far(v, higher)
            for seed in st.seeds
            if (v := objectives(sweep_dir(out, s, seed)))
        ]
        for s in st.samplers
    }


def draw(st: SearchStudy, got: dict[str, list[list[float]]], file: Path) -> None:
    """Best so far against trials: the mean over seeds and a band of min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for sampler, runs in got.items():
        if not runs:
            continue
        n = min(len(r) for r in runs)
        arr = np.array([r[:n] for r in runs], dtype=float)
        x = np.arange(1, n + 1)
        with np.errstate(all="ignore"):
            ax.plot(
                x,
                np.nanmean(arr, 0),
                marker="o",
                ms=3,
                label=f"{sampler} (mean, {len(runs)} seeds)",
            )
            ax.fill_between(x, np.nanmin(arr, 0), np.nanmax(arr, 0), alpha=0.2)
    if st.direction == "minimize" and st.target > 0:
        ax.set_yscale("log")  # a diverged first trial would flatten the rest
    ax.axhline(st.target, color="k", ls="--", lw=1, label=f"target {st.target:g}")
    ax.set_xlabel("trials")
    ax.set_ylabel(f"best objective so far ({st.direction})")
    ax.set_title(f"dlx study {st.name}: best so far (band: min to max over seeds)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(file, dpi=100)
    plt.close(fig)


def tests(st: SearchStudy, out: Path) -> list[tuple[str, stats.Result, str]]:
    """The two claims' log-rank tests: trials to the target, and to the ``than`` sweeps'
    best value (each seed's own); with the figures shown."""
    higher = st.direction == "maximize"
    vals = {s: [objectives(sweep_dir(out, s, seed)) for seed in st.seeds] for s in st.samplers}
    vals = {s: [v for v in vs if v] for s, vs in vals.items()}
    a, b = vals[st.better], vals[st.than]
    to_t = [[trials_to(v, st.target, higher) for v in side] for side in (a, b)]
    goal = [best_so_far(v, higher)[-1] for v in b]
    to_best = [
        [trials_to(v, g, higher) for v, g in zip(a, goal, strict=False)],
        [trials_to(v, g, higher) for v, g in zip(b, goal, strict=True)],
    ]
    out_ = []
    for text, (ea, eb) in (
        (
            f"{st.better} search reaches the target {st.target:g} in fewer trials than {st.than}",
            to_t,
        ),
        (
            f"{st.better} search reaches the best {st.than} value in fewer trials than {st.than}",
            to_best,
        ),
    ):
        res = stats.logrank(ea, eb, False, st.alpha)
        out_.append((text, res, f"{stats.epochs_text(ea)} vs {stats.epochs_text(eb)} trials"))
    return out_


def verdicts(st: SearchStudy, out: Path) -> list[dict[str, Any]]:
    """Each claim's record (``dlx.analysis.book``): Holm across the claims at ``alpha``."""
    from statsmodels.stats.multitest import multipletests

    got = tests(st, out)
    pc = np.array([[r.p_claim for _, r, _ in got]])
    po = np.array([[r.p_other for _, r, _ in got]])
    code, _ = sequential.settle(pc, po, sequential.fractions_of([1]), st.alpha)
    holm = [multipletests(p[0], st.alpha, method="holm")[1] for p in (pc, po)]
    records = []
    for j, (text, res, shown) in enumerate(got):
        word = sequential.WORDS[int(code[j])]
        p = float(holm[int(code[j]) == sequential.DOWN][j])
        line = (
            f"{word}: {text} (log-rank test over search seeds, one-sided; {shown}; "
            f"p={res.p_claim:.3g} (Holm-adjusted {p:.3g}), α={st.alpha:g}; "
            f"n={'/'.join(str(n) for n in res.n)} sweeps)"
        )
        records.append(ledger.record(text, word, res, line, p))
    return records


def distinct(st: SearchStudy, out: Path, sampler: str) -> tuple[int, list[float]]:
    """The distinct values of the important hyperparameter one sweep of ``sampler`` tried (the
    most over its seeds), and those of every trial of it that reached the target."""
    higher = st.direction == "maximize"
    most, good = 0, []
    for seed in st.seeds:
        seen = set()
        for t in trials(sweep_dir(out, sampler, seed)):
            v = _param(t, st.important)
            seen.add(v)
            o = t.get("objective")
            if v is not None and o is not None and (o >= st.target if higher else o <= st.target):
                good.append(v)
        most = max(most, len(seen))
    return most, sorted(set(good))


def _param(trial: dict[str, Any], key: str) -> float | None:
    for o in trial.get("overrides", []):
        k, _, v = o.partition("=")
        if k == key:
            try:
                return float(v)
            except ValueError:
                return None
    return None


def best_per_value(st: SearchStudy, out: Path, sampler: str) -> list[tuple[float, float]]:
    """Each value of the important hyperparameter that ``sampler`` tried and the best
    objective any of its trials reached there (over every seed), by value."""
    higher, best = st.direction == "maximize", {}
    for seed in st.seeds:
        for t in trials(sweep_dir(out, sampler, seed)):
            v, o = _param(t, st.important), t.get("objective")
            if v is not None and o is not None and math.isfinite(o):
                best[v] = o if v not in best else (max if higher else min)(best[v], o)
    return sorted(best.items())


def explain(st: SearchStudy, out: Path) -> str:
    """What makes the claim true or false here, from the sweeps themselves."""
    lines = []
    for s in st.samplers:
        n, good = distinct(st, out, s)
        span = f"{min(good):.3g} to {max(good):.3g}" if good else "none"
        lines.append(
            f"- `{s}`: {n} distinct values of `{st.important}` per sweep; "
            f"the values that reached the target: {span} ({len(good)} distinct)"
        )
    per_value = ", ".join(f"{v:g}: {b:.4g}" for v, b in best_per_value(st, out, st.than))
    lines.append(f"- `{st.than}`'s best objective at each of its values: {per_value}")
    return (
        f"Only `{st.important}` matters much here. A grid of {st.trials} trials spends them on "
        "every combination, so it tries only a few values of it, each repeated across the other "
        "parameter's values; random search tries a new value in every trial. The claim is true "
        f"when the region of `{st.important}` that reaches the target is narrow or falls between "
        "the grid's points (the grid may never get there); it is false when a grid point sits "
        "inside that region, since the grid then hits it once in every few trials as well. "
        "The objective is also rough in the important parameter (one training seed): a grid "
        "point can sit inside the span of good values and still miss the target.\n\n"
        + "\n".join(lines)
    )


def write(st: SearchStudy, out: Path) -> None:
    """``OUT/report/``: the figure, report.md, verdicts.txt and verdicts.json."""
    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    got = curves(st, out)
    draw(st, got, folder / FIGURE)
    records = verdicts(st, out)
    rows = ["| sampler | sweeps | best after 1 / 4 / all trials (mean) |", "| --- | --- | --- |"]
    for s, runs in got.items():
        at = [_mean([r[min(k, len(r)) - 1] for r in runs]) for k in (1, 4, st.trials)]
        rows.append(f"| {s} | {len(runs)} | {' / '.join(f'{x:.4g}' for x in at)} |")
    lines = [r["line"] for r in records]
    md = "\n".join(
        [
            f"# dlx study {st.name}",
            "",
            st.claim,
            "",
            f"Source: {st.source}. Budget: {st.budget}.",
            "",
            *rows,
            "",
            f"![best so far]({FIGURE})",
            "",
            "## What decides it",
            "",
            explain(st, out),
            "",
            "## Verdicts",
            "",
            *(f"- {ln}" for ln in lines),
            "",
        ]
    )
    (folder / "report.md").write_text(md)
    (folder / "verdicts.txt").write_text("\n".join([f"study {st.name}: {st.claim}", *lines]) + "\n")
    ledger.save(folder, st.name, st.claim, st.source, st.budget, records, FIGURE)
    print(f"study {st.name}: {st.claim}\n" + "\n".join(lines))


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return float(np.mean(xs)) if xs else math.nan
