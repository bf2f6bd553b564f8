"""The curriculum's claims as studies: each new study runs end to end through the CLI at a tiny
budget; the search study's best-so-far on a scripted objective; the book's index from
scripted results; the model options and the weight-sparsity metric they need."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import QUICK
from dlx.analysis import book, ledger, search_study, stats
from dlx.analysis.study import find, load

TINY = [*QUICK, "trainer.max_epochs=1", "study.seeds=2"]

NEW = ["capacity", "sparsity", "init", "small_kernels", "bn_learning_rate", "long_range"]


@pytest.mark.parametrize("name", [*NEW, "ensembles"])
def test_a_new_study_runs_end_to_end_at_a_tiny_budget(dlx, name):
    study = load(find(name, []))
    assert study.claims and study.budget
    seeds = ["study.seeds=3"] if study.ensemble else []  # one ensemble of 3 per group
    r = dlx("study", name, *TINY, *seeds, "hydra.sweep.dir=st")
    assert r.returncode in (0, 1), r.stderr  # 1: a run diverged (bn_learning_rate's point)
    assert "Traceback" not in r.stderr
    data = json.loads((dlx.cwd / "st" / "report" / "verdicts.json").read_text())
    assert {c["word"] for c in data["claims"]} <= {"supported", "contradicted", "inconclusive"}
    assert data["wall_s"] > 0
    for c in study.claims:  # every claim's line is printed
        assert c.text in r.stdout
    groups = len(study.grid["model.dropout"]) if study.ensemble else 0
    assert len(data["claims"]) == len(study.claims) + groups  # + one per group's ensembles
    if study.ensemble:  # each ensemble through dlx eval's code
        ens = json.loads((dlx.cwd / "st" / "report" / "ensembles.json").read_text())
        assert all(len(v) == 1 and v[0]["command"].startswith("dlx eval") for v in ens.values())


def test_the_search_study_best_so_far_and_trials_to_a_target():
    lower = [None, 3.0, 5.0, 1.0, 2.0]
    assert search_study.best_so_far(lower, higher=False)[1:] == [3.0, 3.0, 1.0, 1.0]
    assert math.isnan(search_study.best_so_far(lower, higher=False)[0])
    assert search_study.best_so_far([0.1, 0.5, 0.3], higher=True) == [0.1, 0.5, 0.5]
    assert search_study.trials_to(lower, 1.5, higher=False) == (4, True)
    assert search_study.trials_to(lower, 0.5, higher=False) == (5, False)


def _scripted_sweep(folder: Path, values: list[float], lrs: list[float]) -> None:
    folder.mkdir(parents=True)
    trials = [
        {"number": i, "objective": v, "overrides": [f"optim.lr={lr}"], "status": "completed"}
        for i, (v, lr) in enumerate(zip(values, lrs, strict=True))
    ]
    (folder / "sweep.json").write_text(json.dumps({"trials": trials}))


def test_the_search_report_on_a_scripted_objective_where_random_wins(tmp_path):
    """The objective (lr - 0.003)^2: the grid's 4 lrs miss the target region, random hits it
    early in every seed; the verdict is supported and the figure and index entry exist."""
    st = search_study.load(find("search", []))
    st.seeds, st.trials, st.target = [0, 1, 2, 3, 4, 5], 8, 1e-6
    grid = [1e-4, 1e-3, 1e-2, 1e-1] * 2
    for seed in st.seeds:
        order = grid[seed % 8 :] + grid[: seed % 8]
        _scripted_sweep(tmp_path / f"grid-s{seed}", [(x - 3e-3) ** 2 for x in order], order)
        lrs = [0.0031 + 1e-5 * seed, *(0.05 + 0.01 * k for k in range(7))]
        _scripted_sweep(tmp_path / f"random-s{seed}", [(x - 3e-3) ** 2 for x in lrs], lrs)
    from dlx.analysis import search_report

    search_report.write(st, tmp_path)
    data = json.loads((tmp_path / "report" / "verdicts.json").read_text())
    assert data["claims"][0]["word"] == "supported"  # random: trial 1 each; grid: never
    assert data["claims"][1]["word"] == "supported"  # random reaches the grid's best at once
    assert (tmp_path / "report" / "best_so_far.png").stat().st_size > 1000
    report = (tmp_path / "report" / "report.md").read_text()
    assert "4 distinct values of `optim.lr`" in report
    assert "8 distinct values of `optim.lr`" in report


def _scripted_results(results: Path) -> None:
    res = stats.Result("Welch t-test", 0.001, 0.999, 0.25, (0.1, 0.4), 2.0, (3, 3), None)
    for name, word in (("batchnorm", "supported"), ("depth", "inconclusive")):
        folder = results / name
        folder.mkdir(parents=True)
        rec = ledger.record(f"{name} holds", word, res, f"{word}: {name} holds (…)", 0.002)
        ledger.save(folder, name, f"{name} claim", "A Book (2020)", "2 runs", [rec], "bars.png")
        ledger.stamp_wall(folder, 75.0)


def test_the_index_is_built_from_the_studies_results(tmp_path):
    _scripted_results(tmp_path)
    text = book.write_index(tmp_path).read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    assert len(rows) == 2
    assert "**supported**" in rows[0] and "A Book (2020)" in rows[0] and "0.001" in rows[0]
    assert "+0.25" in rows[0] and "3/3" in rows[0] and "1 min 15 s" in rows[0]
    assert "[report](batchnorm/report.md)" in rows[0] and "[figure](batchnorm/bars.png)" in rows[0]
    assert book.last_verdicts(tmp_path) == {"batchnorm": "1 supported", "depth": "1 inconclusive"}


def test_study_list_shows_the_last_verdicts_and_study_all_writes_the_index(dlx, tmp_path):
    _scripted_results(tmp_path / "experiments" / "results")
    r = dlx("study", "list")
    assert r.returncode == 0 and "last" in r.stdout and "1 supported" in r.stdout
    assert "1 inconclusive" in r.stdout
    r = dlx(
        "study",
        "all",
        "study.only=separable,search",
        "study.results=res",
        "study.trials=2",
        *TINY,
    )
    assert r.returncode == 0, r.stderr
    index = (tmp_path / "res" / "README.md").read_text()
    assert "`separable`" in index and "`search`" in index
    assert (tmp_path / "res" / "search" / "best_so_far.png").is_file()
    assert not list((tmp_path / "res").rglob("*.pt"))  # reports only, no runs
    assert (tmp_path / "outputs" / "studies" / "all" / "separable").is_dir()
    r = dlx("study", "all", "study.only=nope")
    assert r.returncode == 2 and "study.only: nope" in r.stderr


def test_lenet_conv_variants_same_output_fewer_weights():
    from dlx.models.lenet import separable, stacked3x3

    x = torch.randn(2, 6, 12, 12)
    conv = torch.nn.Conv2d(6, 16, 5, padding=2)
    for variant in (stacked3x3(6, 16, 5, 2), separable(6, 16, 5, 2)):
        assert variant(x).shape == conv(x).shape
        assert sum(p.numel() for p in variant.parameters()) < sum(
            p.numel() for p in conv.parameters()
        )


def test_weight_sparsity_counts_the_near_zero_share():
    from dlx.callbacks.sparsity import sparsity

    share, mean = sparsity([torch.tensor([0.0, 1e-4, 0.5, -2.0])], 1e-3)
    assert share == 0.5 and mean == pytest.approx((1e-4 + 2.5) / 4)
