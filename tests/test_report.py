"""``dlx report``: groups over seeds with exact means and stds, failed runs counted, figures."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml

from dlx.analysis.report import build, mean_std

#: (overrides, seed, status, test/acc per epoch) for a folder of finished runs
RUNS = [
    (["optim=sgd"], 0, "completed", [0.5, 0.6, 0.70]),
    (["optim=sgd"], 1, "completed", [0.5, 0.7, 0.80]),
    (["optim=sgd"], 2, "diverged", [0.4]),
    (["optim=adam"], 0, "completed", [0.8, 0.9, 0.90]),
    (["optim=adam"], 1, "completed", [0.7, 0.9, 0.95]),
    (["optim=adam"], 2, "completed", [0.9, 0.9, 0.97]),
]


def write_runs(root: Path) -> None:
    """Run dirs as dlx leaves them: config, overrides, summary.json, metrics.csv."""
    for i, (overrides, seed, status, accs) in enumerate(RUNS):
        d = root / f"run{i}"
        (d / ".hydra").mkdir(parents=True)
        cfg = {"trainer": {"monitor": "val/acc", "mode": "auto", "seed": seed}}
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([*overrides, f"trainer.seed={seed}"])
        )
        lines = ["epoch,step,time_s,train/loss,val/acc"]
        lines += [f"{e},{10 * e},{2.0 * e},{1 - a},{a}" for e, a in enumerate(accs, 1)]
        (d / "metrics.csv").write_text("\n".join(lines) + "\n")
        summary = {
            "status": status,
            "epochs": len(accs),
            "params": 1000,
            "metrics": {"test/acc": accs[-1], "val/acc": accs[-1]},
        }
        (d / "summary.json").write_text(json.dumps(summary))


def test_groups_average_over_seeds_exactly_and_count_the_failed_run(tmp_path):
    write_runs(tmp_path)
    report = build(tmp_path, None, None, target=0.9)
    rows = {r["group"]: r for r in report.rows}
    assert set(rows) == {"optim=sgd", "optim=adam"}
    sgd, adam = rows["optim=sgd"], rows["optim=adam"]
    assert (sgd["n"], sgd["failed"], adam["n"], adam["failed"]) == (2, 1, 3, 0)
    assert sgd["test/acc"] == (0.75, statistics.stdev([0.7, 0.8]), 2)
    assert adam["test/acc"] == mean_std([0.9, 0.95, 0.97])
    assert adam["s/epoch"] == (2.0, 0.0, 3)
    # epochs to val/acc >= 0.9: adam 2, 2, 1; sgd never (censored at the 3 epochs it ran)
    assert adam["epochs to target"] == [(2, True), (2, True), (1, True)]
    assert sgd["epochs to target"] == [(3, False), (3, False)]


def test_the_cli_prints_and_writes_the_report_with_readable_figures(dlx, tmp_path):
    import matplotlib.image

    write_runs(tmp_path / "runs")
    r = dlx("report", str(tmp_path / "runs"), "--target", "0.9")
    assert r.returncode == 0, r.stderr
    assert "optim=adam" in r.stdout and "0.9400 ± 0.0361" in r.stdout
    md = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "| optim=sgd | 2 | 1 | 0.7500 ± 0.0707 |" in md
    assert "| median 2 (1, 2, 2) |" in md and "| median never (never, never) |" in md
    pngs = sorted(p.name for p in (tmp_path / "runs" / "report").glob("*.png"))
    assert pngs == [
        "bars_test_acc.png",
        "bars_val_acc.png",
        "curves_train_loss.png",
        "curves_val_acc.png",
        "epochs_to_target.png",  # each run a point, "never" on a row of its own
    ]
    for name in pngs:
        assert f"]({name})" in md
        image = matplotlib.image.imread(tmp_path / "runs" / "report" / name)
        assert image.shape[0] > 100 and image.std() > 0  # a real picture, not a blank


def test_report_errors_are_one_line(dlx, tmp_path):
    r = dlx("report", str(tmp_path / "none"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "DIR=" in r.stderr and "no such folder" in r.stderr
    write_runs(tmp_path / "runs")
    r = dlx("report", str(tmp_path / "runs"), "--by", "optim.nope")
    assert r.returncode == 2 and "--by optim.nope: no run has it" in r.stderr
    r = dlx("report", str(tmp_path / "runs"), "--target", "high")
    assert r.returncode == 2 and "usage: dlx report DIR" in r.stderr
