"""The catalogue from the command line: new models and options train, `dlx summary` counts the
locally connected layers, the dilation rule's error is one line with exit code 2."""

from __future__ import annotations

import json
import re

from conftest import read_summary
from dlx.data.base import DataInfo
from dlx.models import build_model

TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
SMALL = ["data.batch_size=8", "data.test_fraction=0.02"]  # a cheap test split too
DIGITS = DataInfo(name="digits", kind="image", num_classes=10, channels=1, image_size=32)


def test_new_models_train_with_maxout_and_an_init_from_the_cli(dlx):
    """One grid sweep, trials in one process: maxout in conv blocks, residual blocks,
    depthwise and shuffle units and Inception modules, with orthogonal init."""
    models = ["mlp", "lenet", "resnet", "mobilenet", "shufflenet", "googlenet"]
    options = ["model.activation=maxout", "model.init=orthogonal"]
    r = dlx("train", "-m", f"model={','.join(models)}", *options, *TINY, *SMALL, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (dlx.cwd / "outputs" / "sweeps").iterdir()
    trials = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert len(trials) == len(models)
    for trial in trials:
        s = read_summary(dlx.cwd / trial["dir"])
        assert s["status"] == "completed" and s["epochs"] == 1, trial
        name = next(o.split("=")[1] for o in trial["overrides"] if o.startswith("model="))
        node = {"name": name, "activation": "maxout", "init": "orthogonal"}
        assert s["params"] == sum(p.numel() for p in build_model(node, DIGITS).parameters())


def test_summary_shows_the_locally_connected_layers(dlx):
    r = dlx("summary", "model=lenet", "model.conv=local")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    total = int(re.fullmatch(r"Total params: ([\d,]+)", lines[-1]).group(1).replace(",", ""))
    c1, c3 = 28 * 28 * 6 * (25 + 1), 10 * 10 * 16 * (6 * 25 + 1)
    assert total == c1 + c3 + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10) == 423_038
    assert any("LocallyConnected2d" in line and f"{c1:,}" in line for line in lines)
    assert any(line.startswith("MACs: ") for line in lines)


def test_dilation_rates_sharing_a_factor_are_refused(dlx):
    r = dlx("train", "model=resnet", "model.dilation=[2,4,8]", *TINY)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "dlx train: error: model.dilation=[2,4,8]: the rates share the factor 2, so the stacked "
        "convs read only a 1-in-2 sub-grid of pixels (gridding); use co-prime rates such as "
        "[1,2,5]"
    ]
    assert not (dlx.cwd / "outputs" / "runs").exists() or not any(
        (dlx.cwd / "outputs" / "runs").rglob("checkpoints")
    )
