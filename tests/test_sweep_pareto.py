"""Multi-objective dlx sweeps: ``trainer.objectives`` with a direction each, the Pareto front in
sweep.json, the leaderboard and ``optimization_results.yaml``, ``dlx report``'s front figure,
and the one-line refusals (a pruner, a direction count that does not match)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dlx.errors import UsageError
from dlx.sweep import objectives, pareto

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
]


def _dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    """``a`` at least as good as ``b`` everywhere and better somewhere (sign 1: minimise)."""
    pairs = [(s * x, s * y) for s, x, y in zip(signs, a, b, strict=True)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def test_two_objective_sweep_end_to_end(dlx):
    """NSGA-II over the MLP's width: val/acc up, params down; the front is the trials no
    other trial dominates, recorded alike in sweep.json, the leaderboard and
    optimization_results.yaml, and drawn by dlx report."""
    r = dlx(
        "train",
        "-m",
        "hydra/sweeper=dlx_optuna",
        "hydra/sweeper/sampler=nsgaii",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.direction=[maximize,minimize]",
        "trainer.objectives=[val/acc,params]",
        "model=mlp",
        "model.hidden=choice([8],[32],[64])",
        "hydra.sweep.dir=sw",
        *TINY,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "front" in r.stdout and "Pareto front" in r.stdout
    sw = dlx.cwd / "sw"
    data = json.loads((sw / "sweep.json").read_text())
    assert data["objectives"] == ["val/acc", "params"]
    assert data["directions"] == ["maximize", "minimize"]
    assert data["best"] is None  # no single best: the front
    trials = data["trials"]
    assert len(trials) == 4 and all(t["status"] == "completed" for t in trials)
    for t in trials:  # each value is the run's own: its best val/acc, its parameter count
        summary = json.loads(Path(dlx.cwd, t["dir"], "summary.json").read_text())
        assert t["values"] == [summary["metrics"]["val/acc"], summary["params"]]
    signs = [-1, 1]
    on = {t["number"] for t in data["pareto_front"]}
    for t in trials:
        beaten = any(_dominates(o["values"], t["values"], signs) for o in trials)
        assert (t["number"] in on) == (not beaten)
        assert t["pareto"] == (t["number"] in on)
    front = yaml.safe_load((sw / "optimization_results.yaml").read_text())
    assert front["name"] == "optuna"
    assert sorted(s["values"] for s in front["solutions"]) == sorted(
        list(t["values"].values()) for t in data["pareto_front"]
    )
    assert all(isinstance(s["params"]["model.hidden"], str) for s in front["solutions"])

    r = dlx("report", "sw")
    assert r.returncode == 0, r.stderr[-2000:]
    import matplotlib.image

    image = matplotlib.image.imread(sw / "report" / "pareto.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert "pareto.png" in (sw / "report" / "report.md").read_text()


def test_pruning_refuses_a_multi_objective_study(dlx):
    r = dlx(
        "train",
        "-m",
        "sweep=asha",
        "trainer.objectives=[val/acc,params]",
        "hydra.sweep.dir=sw",
        *TINY,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs one objective" in lines[0] and "pruner" in lines[0]
    assert not (dlx.cwd / "sw" / "0").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["hydra.sweeper.direction=[maximize,minimize]"], "trainer.objectives=[val/acc,params]"),
        (
            ["trainer.objectives=[val/acc,params,macs]", "hydra.sweeper.direction=[max,min]"],
            "choose maximize or minimize",
        ),
        (
            ["trainer.objectives=[val/acc,params]", "hydra.sweeper.direction=[maximize]"],
            "give one each",
        ),
        (["trainer.objectives=[val/acc,flops]"], "unknown objective 'flops'"),
    ],
)
def test_bad_objectives_and_directions_are_one_line(dlx, args, words):
    r = dlx("train", "-m", "sweep=tpe", "hydra.sweep.dir=sw", *args, *TINY)
    assert r.returncode == 2 and words in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1


def test_objective_values_and_directions():
    summary = {
        "status": "completed",
        "epochs": 4,
        "params": 1000,
        "train_time_s": 10.0,
        "duration_s": 12.0,
        "peak_mem_mb": 55.5,
        "metrics": {"val/acc": 0.9, "val/loss": 0.3},
    }
    names = ["val/acc", "params", "s/epoch", "peak_mem_mb", "val/loss"]
    assert objectives.values(summary, names, {}) == [0.9, 1000.0, 2.5, 55.5, 0.3]
    assert objectives.values({**summary, "status": "diverged"}, names, {}) is None
    assert objectives.values(summary, ["test/acc"], {}) is None  # the run has no such figure
    rules = [objectives.direction(n, "val/acc", "auto") for n in names]
    assert rules == ["maximize", "minimize", "minimize", "minimize", "minimize"]
    assert objectives.direction("val/acc", "val/acc", "min") == "minimize"  # trainer.mode
    with pytest.raises(UsageError, match="named twice"):
        objectives.check(["params", "params"])


def test_front_keeps_ties_and_drops_dominated_points():
    values = {"a": [0.9, 100.0], "b": [0.8, 50.0], "c": [0.8, 60.0], "d": [0.9, 100.0]}
    assert pareto.front(values, ["maximize", "minimize"]) == ["a", "b", "d"]
    trials = [
        {"number": i, "values": v} for i, v in enumerate([[0.5, 9.0], [0.7, 20.0], [0.4, 10.0]])
    ]
    trials.append({"number": 3, "values": None})
    assert pareto.mark(trials, ["maximize", "minimize"]) == [0, 1]
    order = [t["number"] for t in pareto.ranked(trials, ["maximize", "minimize"])]
    assert order == [1, 0, 2, 3]


def test_recipe_composes_with_two_objectives():
    from dlx.commands.runs import compose

    cfg = compose(["sweep=mobilenet_front"])
    assert cfg.model.name == "mobilenet" and list(cfg.trainer.objectives) == ["val/acc", "macs"]
