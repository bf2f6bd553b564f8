"""What the studies rest on: ``data.train_fraction`` (a seeded subset of the training split)
and ``trainer.log_grad_norms`` (``grads/norm/<layer>``), each from the CLI and pinned."""

from __future__ import annotations

import csv

import pytest
import torch
from omegaconf import OmegaConf

from conftest import QUICK, only_run_dir, scalar_tags
from dlx.callbacks.grad_norms import layer_weights
from dlx.data import build_data


def _digits(**keys):
    return build_data(OmegaConf.create({"name": "digits", **keys}), torch.device("cpu"))


def test_train_fraction_keeps_a_seeded_nested_subset_and_leaves_val_and_test_whole():
    whole, tenth = _digits(), _digits(train_fraction=0.1)
    n = len(whole.splits["train"][1])
    assert len(tenth.splits["train"][1]) == round(n * 0.1) == tenth.info.sizes["train"]
    for split in ("val", "test"):
        assert torch.equal(tenth.splits[split][0], whole.splits[split][0])
    again = _digits(train_fraction=0.1)
    assert torch.equal(again.splits["train"][0], tenth.splits["train"][0])  # seeded
    other = _digits(train_fraction=0.1, split_seed=1)
    assert not torch.equal(other.splits["train"][1], tenth.splits["train"][1])
    rows = {tuple(x.flatten().tolist()) for x in whole.splits["train"][0]}
    assert all(tuple(x.flatten().tolist()) in rows for x in tenth.splits["train"][0])


def test_train_fraction_out_of_range_is_one_line(dlx):
    r = dlx("train", "data.train_fraction=1.5")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "dlx train: error: data.train_fraction=1.5: out of range; allowed: a number in (0, 1]"
    ]


def test_layer_weights_name_each_layer_once_in_order():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    assert list(layer_weights(net)) == ["0", "2"]


@pytest.mark.parametrize("activation", ["sigmoid"])
def test_grad_norms_are_logged_per_layer_and_their_epoch_means_reach_metrics_csv(dlx, activation):
    r = dlx(
        "train",
        "model=mlp",
        "model.hidden=[16,16,16,16,16]",
        f"model.activation={activation}",
        "trainer.log_grad_norms=true",
        *QUICK,
    )
    assert r.returncode == 0, r.stderr
    run = only_run_dir(dlx.cwd)
    tags = scalar_tags(run)
    layers = [f"grads/norm/fc{i}.linear" for i in range(1, 6)] + ["grads/norm/output"]
    assert all(len(tags[t]) == 6 for t in layers)  # 2 epochs x 3 steps, every one a log step
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(t in rows[0] for t in layers)
    first = [v for s, v in tags["grads/norm/fc1.linear"] if s <= 3]
    assert float(rows[0]["grads/norm/fc1.linear"]) == pytest.approx(sum(first) / 3, rel=1e-5)
    # five sigmoid layers: the first layer's gradient is far below the output layer's
    assert float(rows[-1]["grads/norm/fc1.linear"]) < float(rows[-1]["grads/norm/output"]) / 20
    r = dlx("report", "outputs/runs")
    assert r.returncode == 0, r.stderr
    figure = dlx.cwd / "outputs" / "runs" / "report" / "grad_norms.png"
    import matplotlib.image

    assert matplotlib.image.imread(figure).shape[2] in (3, 4)  # a real PNG
    assert "![grad_norms](grad_norms.png)" in figure.with_name("report.md").read_text()


def test_macs_of_a_runs_config_is_lenets_arithmetic():
    from dlx.analysis.macs import macs_of

    # LeNet-5 at 32x32: conv 6x28x28x25 + conv 16x10x10x150 + fc 400x120 + 120x84 + 84x10,
    # and torchinfo counts each bias add as one more: 6x28x28 + 16x10x10 + 120 + 84 + 10
    weights = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    biases = 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10
    config = {"model": {"name": "lenet"}, "data": {"name": "digits", "image_size": 32}}
    assert macs_of(config) == weights + biases == 423_038
    assert macs_of({"model": {"name": "nope"}, "data": {"name": "digits"}}) is None
