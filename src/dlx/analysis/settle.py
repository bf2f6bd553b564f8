"""``dlx study NAME``'s run: the study's sweep, then (``study.until_settled=true``) rounds of
``study.step`` more seeds for the groups of the claims not yet settled, until every claim is
settled or each group has ``study.max_seeds``; then the report and the verdicts.

Each round is its own sweep into the study's folder (``r<round>g<group>-<job>/``), so a
re-run of the same command resumes: every finished run is re-used, never trained again, and
the decisions between rounds are re-made from the same runs (look k reads only the first
``n_k`` seeds), so they come out the same. The error rate under these repeated looks is held
by ``dlx.analysis.sequential``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.analysis import ledger, sequential
from dlx.analysis.study import find, hydra_value, load, options, seed_order, sweep_args
from dlx.analysis.verdicts import judge, line

if TYPE_CHECKING:
    from dlx.analysis.records import Report
    from dlx.analysis.study import Study

#: exit codes that stop a study (Ctrl-C, SIGTERM): no further round starts
STOPPED = (129, 130, 143)  # SIGHUP, SIGINT, SIGTERM


def claim_groups(study: Study) -> list[str]:
    """The groups the claims compare, in the order of the claims (a group's index names
    its rounds' folders)."""
    labels = [lab for c in study.claims for lab in (c.better, c.than) if isinstance(lab, str)]
    return list(dict.fromkeys(labels))


def group_args(
    study: Study, label: str, seeds: list[int], extra: list[str], out: Path, sub: str
) -> list[str]:
    """The ``dlx train -m`` arguments of one group's runs for ``seeds``, into ``out/sub-<job>``
    (the grid keys in the grid's order, so the report groups them with the first round's)."""
    fixed = dict(part.split("=", 1) for part in label.split())
    grid = [
        f"{k}={fixed.get(k, ','.join(hydra_value(v) for v in vs))}" for k, vs in study.grid.items()
    ]
    seed = "trainer.seed=" + ",".join(str(s) for s in seeds)
    subdir = f"hydra.sweep.subdir={sub}-${{hydra.job.num}}"
    return ["-m", *grid, seed, *study.overrides, *extra, f"hydra.sweep.dir={out}", subdir]


def _report(study: Study, out: Path, show: bool) -> Report:
    from dlx.analysis.report import build, run_report

    target = study.target or {}
    args = (out, list(study.grid), study.metrics or None, target.get("value"), target.get("metric"))
    return run_report(*args) if show else build(*args)


def run(
    study: Study, extra: list[str], config_dirs: list[Path], out: Path, opts: dict[str, Any]
) -> int:
    """The study's runs, rounds, report and verdicts; the exit code (130/143 when stopped)."""
    from dlx.sweep.launch import train

    cd = [a for d in config_dirs for a in ("-cd", str(d))]
    order = seed_order(study, opts["max_seeds"])
    planned = sequential.looks(len(study.seeds), opts["max_seeds"], opts["step"])
    code = train([*cd, *sweep_args(study, extra, out)])
    done = 1
    while done < len(planned) and code not in STOPPED:
        verdicts = judge(_report(study, out, False), study, order, planned[:done], planned)
        open_claims = [
            c
            for c, v in zip(study.claims, verdicts, strict=True)
            if v.word == sequential.INCONCLUSIVE
        ]
        if not open_claims:
            break
        wanted = {lab for c in open_claims for lab in (c.better, c.than) if isinstance(lab, str)}
        seeds = order[planned[done - 1] : planned[done]]
        print(
            f"study {study.name}: round {done}: {len(open_claims)} claims open; "
            f"seeds {seeds} for {len(wanted)} groups"
        )
        for gi, label in enumerate(claim_groups(study)):
            if label in wanted and code not in STOPPED:
                code = max(
                    code,
                    train([*cd, *group_args(study, label, seeds, extra, out, f"r{done}g{gi}")]),
                )
        if code in STOPPED:
            break
        done += 1
    write(study, out, _report(study, out, True), order, planned, done)
    return code


def write(
    study: Study, out: Path, report: Report, order: list[int], planned: list[int], done: int
) -> None:
    """The verdicts after ``done`` looks: printed, in ``verdicts.txt`` and under ``report.md``."""
    from dlx.engine.checkpoint import atomic_write

    verdicts = judge(report, study, order, planned[:done], planned)
    lines = [line(study, c, v) for c, v in zip(study.claims, verdicts, strict=True)]
    records = [
        ledger.record(c.text, v.word, v.result, ln, v.p_holm)
        for c, v, ln in zip(study.claims, verdicts, lines, strict=True)
    ]
    if study.ensemble > 1:  # each group's ensembles against their members (ensemble_study)
        from dlx.analysis import ensemble_study

        more, more_records = ensemble_study.judge(study, report, out)
        lines, records = [*lines, *more], [*records, *more_records]
    text = "\n".join([f"study {study.name}: {study.claim}", *lines]) + "\n"
    atomic_write(out / "report" / "verdicts.txt", lambda f: f.write(text.encode()))
    figure = ledger.main_figure(out / "report", study.claims[0].metric)
    ledger.save(
        out / "report", study.name, study.claim, study.source, study.budget, records, figure
    )
    md = (out / "report" / "report.md").read_text()
    head = f"## Verdicts ({study.source}; budget: {study.budget})\n\n{method(study, planned)}\n\n"
    body = head + "".join(f"- {ln}\n" for ln in lines)
    atomic_write(out / "report" / "report.md", lambda f: f.write((md + "\n" + body).encode()))
    print(text, end="")


def method(study: Study, planned: list[int]) -> str:
    """How the verdicts were reached, in one paragraph of report.md."""
    text = (
        "Each claim: a one-sided significance test in the claimed direction (`supported`) and "
        "the other (`contradicted`), else `inconclusive` with the seeds per group a power "
        f"analysis asks for (80% power); Holm's correction across the {len(study.claims)} "
        f"claims at α = {study.alpha:g}."
    )
    if study.ensemble > 1:
        text += (
            f" The ensemble claims: each group's runs cut by seed into ensembles of "
            f"{study.ensemble}, each evaluated as `dlx eval RUN…` does (the commands in "
            "`ensembles.json`); a one-sample t-test of the ensembles' gains over their average "
            "member against 0, Holm's correction across these claims."
        )
    if len(planned) > 1:
        seeds = ", ".join(str(n) for n in planned)
        text += (
            f" Seeds added in rounds (looks at {seeds} seeds per group); α spent across the "
            "looks by the Lan-DeMets O'Brien-Fleming-type function, so the error rate holds "
            "under the repeated looks."
        )
    return text


def run_search(path: Path, extra: list[str], config_dirs: list[Path], out: Path) -> int:
    """A search study (``search_study``): every (sampler, seed) sweep, then the report and
    verdicts (``search_report``); the worst exit code."""
    from dlx.analysis import search_report, search_study
    from dlx.analysis.search_study import sweep_dir, trials
    from dlx.sweep.launch import train

    st = search_study.load(path)
    extra = search_study.quick(st, extra)
    cd = [a for d in config_dirs for a in ("-cd", str(d))]
    code = 0
    for seed in st.seeds:
        for sampler in st.samplers:
            if code in STOPPED:
                break
            done = trials(sweep_dir(out, sampler, seed))
            if len(done) >= st.trials:  # resumed: this sweep is finished
                continue
            args = search_study.sweep_args(st, sampler, seed, extra, out)
            code = max(code, train([*cd, *args]))
    search_report.write(st, out)
    return code


def run_study(name: str, extra: list[str], config_dirs: list[Path]) -> int:
    """Sweep, (rounds of more seeds,) report, verdicts; written to ``OUT/verdicts.txt`` too
    (a search study: ``run_search``; ``all``, every study: ``dlx.analysis.book``). The
    sweep's exit code; the wall time joins ``OUT/report/verdicts.json``."""
    from dlx.analysis import search_study

    path = find(name, config_dirs)
    given = [o.split("=", 1)[1] for o in extra if o.startswith("hydra.sweep.dir=")]
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(given[0]) if given else Path("outputs/studies") / f"{name}-{stamp}"
    extra = [o for o in extra if not o.startswith("hydra.sweep.dir=")]
    start = time.monotonic()
    if search_study.is_search(path):
        code = run_search(path, extra, config_dirs, out)
    else:
        study = load(path)
        opts, extra = options(study, extra)
        code = run(study, extra, config_dirs, out, opts)
    ledger.stamp_wall(out / "report", time.monotonic() - start)
    return code
