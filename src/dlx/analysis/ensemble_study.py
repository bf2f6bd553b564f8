"""A study's ensembles (``ensemble: K`` in its YAML): after its sweep, each group's runs are
split by seed into disjoint ensembles of K, each evaluated the way ``dlx eval RUN RUN…`` does
(``dlx.commands.ensemble``: the members' softmax probabilities averaged, on the test split);
the claim per group is that an ensemble beats its average member on the ensemble's
``ensemble_metric`` (a one-sample t-test of the per-ensemble gains against 0; Holm's
correction across these claims). The gains are written to ``report/ensembles.json``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlx.analysis import ledger, sequential, stats

if TYPE_CHECKING:
    from dlx.analysis.records import Report
    from dlx.analysis.study import Study

#: the statuses of runs that can be members (a best checkpoint to load)
MEMBERS = ("completed", "stopped_early")


def ensembles(report: Report, study: Study) -> dict[str, list[list[Path]]]:
    """Per group, its finished runs' dirs in seed order, cut into disjoint ensembles of K."""
    from dlx.analysis.verdicts import _seed

    k, out = study.ensemble, {}
    for g in report.groups:
        runs = sorted((r for r in g.runs if r.status in MEMBERS), key=lambda r: _seed(r) or 0)
        dirs = [r.dir for r in runs]
        out[g.label] = [dirs[i : i + k] for i in range(0, len(dirs) - k + 1, k)]
    return out


def gains(dirs: list[Path], metric: str) -> dict[str, Any]:
    """One ensemble through ``dlx eval``'s code: members' and ensemble's ``metric``, the gain."""
    from dlx.commands.ensemble import evaluate_ensemble
    from dlx.engine.spec import parse_run_dir

    rows = evaluate_ensemble([(d, parse_run_dir(d, [])) for d in dirs])
    members = [m[metric] for _, m in rows[:-1]]
    whole = rows[-1][1][metric]
    return {
        "command": "dlx eval " + " ".join(str(d) for d in dirs),
        "members": members,
        "ensemble": whole,
        "gain": whole - statistics.fmean(members),
    }


def judge(study: Study, report: Report, out: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Each group's claim: its verdict line and book record; ``out/report/ensembles.json``."""
    from statsmodels.stats.multitest import multipletests

    from dlx.engine.monitor import resolve_mode

    metric, k = study.ensemble_metric, study.ensemble
    higher = resolve_mode(metric, "auto") == "max"
    measured = {
        label: [gains(e, metric) for e in ens] for label, ens in ensembles(report, study).items()
    }
    (out / "report" / "ensembles.json").write_text(json.dumps(measured, indent=1))
    labels = list(measured)
    results = [
        stats.one_sample([e["gain"] for e in measured[lab]], 0.0, higher, study.alpha)
        for lab in labels
    ]
    pc = np.array([[r.p_claim for r in results]])
    po = np.array([[r.p_other for r in results]])
    code, _ = sequential.settle(pc, po, sequential.fractions_of([1]), study.alpha)
    holm = [multipletests(p[0], study.alpha, method="holm")[1] for p in (pc, po)]
    lines, records = [], []
    for j, (lab, res) in enumerate(zip(labels, results, strict=True)):
        word = sequential.WORDS[int(code[j])]
        p = float(holm[int(code[j]) == sequential.DOWN][j])
        g = [e["gain"] for e in measured[lab]]
        text = f"an ensemble of {k} ({lab}) beats its average member on {metric}"
        shown = f"gain {np.mean(g):+.4g} ± {np.std(g, ddof=1) if len(g) > 1 else 0:.2g}"
        line = (
            f"{word}: {text} (one-sample t-test of the per-ensemble gains against 0, "
            f"one-sided; {shown}; p={res.p_claim:.3g} (Holm-adjusted {p:.3g}), "
            f"α={study.alpha:g}; n={len(g)} ensembles)"
        )
        lines.append(line)
        records.append(ledger.record(text, word, res, line, p))
    return lines, records
