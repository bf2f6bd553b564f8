"""Sequence tasks for the recurrent models: the copy task, pixel-by-pixel (permuted) images."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import read_summary, scalar_tags
from dlx.data import build_data
from dlx.data.sequence import copy_baseline
from dlx.engine.inputs import Inputs, pixel_order
from dlx.engine.objective import build_objective
from dlx.errors import UsageError
from dlx.models import build_model

CPU = torch.device("cpu")
COPY = {"name": "copy", "length": 4, "delay": 6, "alphabet": 5, "num_train": 64}
COPY.update(num_val=32, num_test=32, batch_size=16)
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
]


# --- the copy task -----------------------------------------------------------------------------
def test_copy_task_layout():
    data = build_data(COPY, CPU)
    info = data.info
    assert (info.task, info.per_step, info.scored_steps) == ("sequence_classification", True, 4)
    assert (info.seq_len, info.features, info.num_classes) == (14, 7, 6)  # T = 6 + 2*4
    x, y = data.splits["train"]
    assert x.shape == (64, 14, 7) and y.shape == (64, 14) and y.dtype == torch.int64
    tokens = x.argmax(-1)
    assert torch.equal(x.sum(-1), torch.ones(64, 14))  # one-hot
    assert torch.equal(tokens[:, -4:], torch.full((64, 4), 5))  # blanks while recalling
    assert torch.equal(tokens[:, 9], torch.full((64,), 6))  # the marker: after delay - 1 blanks
    assert torch.equal(y[:, -4:], tokens[:, :4])  # the symbols, repeated
    assert torch.equal(y[:, :-4], torch.full((64, 10), 5))  # blank everywhere else
    assert int(tokens[:, :4].max()) < 5
    other = build_data({**COPY, "split_seed": 1}, CPU)
    assert not torch.equal(other.splits["train"][1], y)
    assert not torch.equal(data.splits["val"][1], y[:32])


def test_copy_baseline_is_the_memoryless_cross_entropy():
    """A model that knows blanks but remembers nothing: blank with certainty until the
    marker, then uniform over the symbols. Its loss is the documented baseline."""
    data = build_data(COPY, CPU)
    _, y = data.splits["val"]
    info = data.info
    logits = torch.full((32, 14, 6), -1e4)
    logits[:, :-4, 5] = 0.0  # blank
    logits[:, -4:, :5] = 0.0  # uniform over the 5 symbols
    objective = build_objective(info)
    loss = float(objective.loss(logits, y))
    assert loss == pytest.approx(copy_baseline(4, 5, 6), rel=1e-5)
    assert loss == pytest.approx(4 * math.log(5) / 14, rel=1e-5)
    _, scored = objective.stats(logits, y).tolist()
    assert scored == 32 * 4  # only the recalled steps are scored


def test_sequence_objective_counts_only_scored_steps():
    data = build_data(COPY, CPU)
    _, y = data.splits["val"]
    out = torch.nn.functional.one_hot(y, 6).float()  # perfect
    out[:, -1] = 0.0  # the last recalled step wrong
    out[torch.arange(32), -1, (y[:, -1] + 1) % 6] = 1.0
    out[:, 0] = 0.0  # a blank step wrong: not scored for the accuracy
    out[:, 0, 0] = 1.0
    objective = build_objective(data.info)
    metrics = objective.summarise("val", 0.1, objective.stats(out, y).tolist(), 32)
    assert metrics == {"val/loss": 0.1, "val/acc": pytest.approx(3 / 4)}


def test_lstm_emits_a_step_per_step_when_the_data_says_so():
    info = build_data(COPY, CPU).info
    for cell in ("lstm", "gru", "rnn"):
        model = build_model({"name": "lstm", "cell": cell, "hidden_size": 8}, info)
        assert model(torch.zeros(3, 14, 7)).shape == (3, 14, 6)
    bi = build_model({"name": "lstm", "hidden_size": 8, "bidirectional": True}, info)
    assert bi(torch.zeros(3, 14, 7)).shape == (3, 14, 6)


# --- pixel by pixel ----------------------------------------------------------------------------
def test_pixel_order_is_fixed_per_seed_and_differs_between_seeds():
    a, b, c = pixel_order(1024, 3), pixel_order(1024, 3), pixel_order(1024, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a.sort().values, torch.arange(1024))


def test_permuted_pixels_same_for_every_split():
    digits = {"name": "digits", "image_size": 8, "permute": True, "permute_seed": 7}
    data = build_data(digits, CPU)
    assert data.info.permute_seed == 7
    inputs = Inputs(data.info, CPU, channels_last=False)
    plain = Inputs(build_data({**digits, "permute": False}, CPU).info, CPU, channels_last=False)
    order = pixel_order(64, 7)
    for split in ("train", "val", "test"):
        xb, yb = next(data.batches(split))
        x, _ = inputs(xb, yb)
        raw, _ = plain(xb, yb)
        assert torch.equal(x.flatten(2), raw.flatten(2)[:, :, order]), split
    default_seed = build_data({**digits, "permute_seed": None, "split_seed": 5}, CPU).info
    assert default_seed.permute_seed == 5  # null: split_seed
    assert build_data({"name": "digits"}, CPU).info.permute_seed is None


def test_pixels_reading_view():
    info = build_data({"name": "digits", "image_size": 8, "sequence": "pixels"}, CPU).info
    model = build_model({"name": "lstm", "hidden_size": 8}, info)
    assert model.rnn.input_size == 1  # one grey value per step
    x = torch.arange(2 * 64.0).view(2, 1, 8, 8)
    assert torch.equal(model.view(x)[:, :, 0], x.flatten(1))  # row-major, H*W steps
    assert model(x).shape == (2, 10)
    rows = build_model({"name": "lstm", "hidden_size": 8}, build_data({"name": "digits"}, CPU).info)
    assert rows.rnn.input_size == 32  # rows: the default, as before
    with pytest.raises(UsageError, match=r"data\.sequence=columns: .*rows, pixels"):
        build_data({"name": "digits", "sequence": "columns"}, CPU)


# --- from the command line ---------------------------------------------------------------------
def test_copy_task_trains_from_the_cli(dlx):
    r = dlx("train", "+experiment=lstm_copy", "data.length=3", "data.delay=4", "data.num_train=256",
            "data.num_val=64", "data.num_test=64", "model.hidden_size=16", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = (dlx.cwd / "outputs" / "runs").iterdir()
    s = read_summary(run)
    assert s["status"] == "completed" and s["monitor"] == "val/acc"
    tags = scalar_tags(run)
    assert 0.0 <= tags["val/acc"][-1][1] <= 1.0 and 0.0 < tags["val/loss"][-1][1] < 3.0


def test_permuted_pixels_train_from_the_cli(dlx):
    r = dlx("train", "model=lstm", "model.hidden_size=8", "data.image_size=8",
            "data.sequence=pixels", "data.permute=true", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = (dlx.cwd / "outputs" / "runs").iterdir()
    assert read_summary(run)["status"] == "completed"
    assert "test/acc" in scalar_tags(run)
