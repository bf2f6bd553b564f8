"""``dlx report --by``: a group names a config group by its option, never the resolved node;
its figures keep the legend off the curves and every label inside the picture, with no
matplotlib layout warning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import yaml

from dlx.analysis.report import build

ADAM = {"name": "adam", "lr": 0.001, "weight_decay": 0.0, "betas": [0.9, 0.999]}
SGD = {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}


def write_run(root: Path, name: str, overrides: list[str], optim: dict, model: str, acc: float):
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    cfg = {"optim": optim, "model": {"name": model}, "trainer": {"monitor": "val/acc"}}
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    rows = ["epoch,step,time_s,train/loss,val/acc"]
    rows += [f"{e},{e},{e},{1 - acc * e / 3},{acc * e / 3}" for e in (1, 2, 3)]
    (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {"status": "completed", "epochs": 3, "params": 10, "metrics": {"test/acc": acc}}
    (d / "summary.json").write_text(json.dumps(summary))


def folder(root: Path) -> Path:
    """Runs that left optim at its default (adam) beside runs that chose it explicitly."""
    write_run(root, "a0", ["model=resnet", "trainer.seed=0"], ADAM, "resnet", 0.9)
    write_run(root, "a1", ["optim=adam", "model=resnet", "trainer.seed=1"], ADAM, "resnet", 0.8)
    write_run(root, "a2", ["optim.lr=0.1", "model=lenet"], {**ADAM, "lr": 0.1}, "lenet", 0.5)
    write_run(root, "s0", ["optim=sgd", "model=lenet"], SGD, "lenet", 0.7)
    return root


def test_by_a_group_labels_runs_by_the_option_name(dlx, tmp_path):
    root = folder(tmp_path / "runs")
    r = dlx("report", str(root), "--by", "optim", "model")
    assert r.returncode == 0, r.stderr
    report = build(root, ["optim", "model"], None, None)
    labels = sorted(row["group"] for row in report.rows)
    # the default adam and the chosen adam are one group; no resolved dict anywhere
    assert labels == ["optim=adam model=lenet", "optim=adam model=resnet", "optim=sgd model=lenet"]
    assert "{" not in r.stdout and "'name'" not in r.stdout
    assert "Tight layout not applied" not in r.stderr and "Warning" not in r.stderr


def test_figures_keep_legend_and_labels_clear(tmp_path):
    """Many groups with long labels: the legend lies outside the axes, every tick label and
    the legend inside the figure, and drawing warns nothing."""
    from dlx.analysis.plots import bars_figure, curves_figure

    root = tmp_path / "runs"
    for i in range(8):
        over = [f"optim.lr={10**-i}", f"model.hidden=[{256 * (i + 1)},{128 * (i + 1)}]"]
        write_run(root, f"r{i}", over, {**ADAM, "lr": 10**-i}, "mlp", 0.1 * i + 0.1)
    report = build(root, None, ["test/acc"], None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curves = curves_figure(report, "val/acc")
        stats = [(row["group"], row["test/acc"]) for row in report.rows]
        bars = bars_figure(stats, "test/acc")
        for fig in (curves, bars):
            fig.canvas.draw()
    renderer = curves.canvas.get_renderer()
    (ax,) = curves.axes
    legend = curves.legends[0].get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer)), "the legend covers the plot"
    assert curves.bbox.contains(legend.x0, legend.y0) and curves.bbox.contains(legend.x1, legend.y1)
    (bax,) = bars.axes
    for label in bax.get_xticklabels():
        box = label.get_window_extent(bars.canvas.get_renderer())
        assert bars.bbox.x0 <= box.x0 and box.y0 >= bars.bbox.y0, f"{label.get_text()} is cut"


def test_one_long_label_wraps_and_brackets_print(dlx, tmp_path):
    """A run whose overrides make a 150-character label (the autoencoder's CLI test): its bar
    figure lays out without a warning, and ``augment=[noise]`` prints as written, not eaten
    as Rich markup."""
    from dlx.analysis.plots import bars_figure

    root = tmp_path / "runs"
    over = ["model=autoencoder", "augment=[noise]", "trainer.max_epochs=2"]
    over += ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    over += ["trainer.log_every_n_steps=1", "trainer.progress=false"]
    write_run(root, "ae", over, ADAM, "autoencoder", 0.5)
    report = build(root, None, ["test/acc"], None)
    (row,) = report.rows
    assert len(row["group"]) > 140
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bars = bars_figure([(row["group"], row["test/acc"])], "test/acc")
        bars.canvas.draw()
    (ax,) = bars.axes
    assert ax.get_window_extent(bars.canvas.get_renderer()).width > 100  # not collapsed
    r = dlx("report", str(root), env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    assert "augment=[noise]" in r.stdout and "Warning" not in r.stderr
