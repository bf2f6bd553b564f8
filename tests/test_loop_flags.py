"""Loop-level flags users know from Lightning: gradient accumulation (exact, resumable),
``fast_dev_run`` and ``overfit_batches``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import QUICK, read_summary, scalar_tags

#: deterministic, no augmentation, LeNet (no batch norm): the accumulated step is exact
BASE = [
    "trainer.max_epochs=2",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "trainer.progress=false",
]


def _inprocess(tmp: Path, *overrides: str) -> tuple[dict, dict]:
    from dlx.commands.runs import compose
    from dlx.engine.loop import run

    summary = run(compose([*BASE, *overrides]), tmp, quiet=True)
    ck = torch.load(tmp / "checkpoints" / "last.pt", weights_only=True)
    return summary, ck


def test_four_accumulated_batches_of_16_are_one_step_on_a_batch_of_64(tmp_path):
    whole = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=null"]  # same val set
    one, ck_one = _inprocess(tmp_path / "a", "data.batch_size=64", *whole)
    acc, ck_acc = _inprocess(
        tmp_path / "b",
        "data.batch_size=16",
        "trainer.accumulate_grad_batches=4",
        *whole,
    )
    assert ck_acc["state"]["step"] == ck_one["state"]["step"] == 6  # optimizer steps
    for name, w in ck_one["model"].items():
        torch.testing.assert_close(ck_acc["model"][name], w, rtol=1e-5, atol=1e-6)
    for k in ("train/loss", "train/acc", "val/loss", "test/acc"):
        assert math.isclose(acc["metrics"][k], one["metrics"][k], rel_tol=1e-5), k
    tags = scalar_tags(tmp_path / "b")  # logged and scheduled in optimizer steps
    assert [s for s, _ in tags["train/loss"]] == [1, 2, 3, 4, 5, 6]


def test_a_killed_accumulating_run_resumes_to_the_same_weights(kill_and_resume):
    run = [
        *BASE,
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=3",
        "data.batch_size=16",
        "trainer.accumulate_grad_batches=3",
        "trainer.checkpoint_every_n_steps=2",
        "augment=[flip]",
    ]
    full = read_summary(kill_and_resume.train(*run))
    kill_and_resume.kill(*run, at=4)
    assert kill_and_resume.resume()["metrics"] == full["metrics"]


def test_accumulating_more_batches_than_an_epoch_has_exits_2(dlx):
    r = dlx(
        "train", *QUICK, "trainer.limit_train_batches=null", "trainer.accumulate_grad_batches=1000"
    )
    assert r.returncode == 2
    assert "trainer.accumulate_grad_batches=1000: more than the" in r.stderr


def test_fast_dev_run_runs_everything_once_and_keeps_no_checkpoint(dlx):
    r = dlx("train", "trainer.fast_dev_run=true", "trainer.progress=false", "hydra.run.dir=f")
    assert r.returncode == 0, r.stderr
    assert (
        "fast_dev_run: 1 epoch of 1 train, 1 val and 1 test batch; checkpoints not kept" in r.stderr
    )
    run = dlx.cwd / "f"
    s = read_summary(run)
    assert s["status"] == "completed" and s["epochs"] == 1 and "test/acc" in s["metrics"]
    assert not (run / "checkpoints").exists()
    assert [step for step, _ in scalar_tags(run)["train/loss"]] == [1]


def test_overfit_batches_trains_and_validates_on_the_same_few_batches(dlx):
    r = dlx(
        "train",
        "trainer.overfit_batches=2",
        "trainer.max_epochs=40",
        "optim.lr=3e-3",
        "augment=[flip,crop]",
        "trainer.progress=false",
        "hydra.run.dir=o",
    )
    assert r.returncode == 0, r.stderr
    s = read_summary(dlx.cwd / "o")
    assert s["last"]["val/acc"] == 1.0  # 64 samples it has seen 40 times, unaugmented
    assert s["last"]["train/loss"] < 0.05
    steps = [step for step, _ in scalar_tags(dlx.cwd / "o")["val/acc"]]
    assert steps == [2 * e for e in range(1, 41)]  # 2 steps an epoch


@pytest.mark.parametrize("n", [1, 3])
def test_overfit_data_serves_the_first_batches_in_a_fixed_order(n):
    from dlx.commands.runs import compose
    from dlx.data import build_data
    from dlx.data.overfit import OverfitData

    data = build_data(compose([]).data, torch.device("cpu"))
    over = OverfitData(data, n)
    train = torch.cat([y for _, y in over.batches("train", shuffle=True, seed=5)])
    again = torch.cat([y for _, y in over.batches("train", shuffle=True, seed=6)])
    val = torch.cat([y for _, y in over.batches("val", batch_size=100)])
    assert torch.equal(train, again) and torch.equal(val, train) and len(train) == 32 * n
    assert over.num_batches("train", drop_last=True) == n
