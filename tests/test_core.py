"""The training core: the hook API (a user's callbacks from the config), which epoch is best,
what summary.json holds, the progress bar, batch norm under DDP, and the code's shape."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import QUICK, read_summary, run_dlx, scalar_tags
from dlx.engine.monitor import resolve_mode
from dlx.engine.state import State

#: a user's own callbacks module, as a user writes it next to their experiments
USER_CALLBACKS = '''
import json
import torch
from dlx.callbacks import Callback


class Recorder(Callback):
    """Which hooks ran, in order, with the epoch or step they saw."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, run):
        self.calls.append(["on_fit_start", run.state.epoch])

    def on_epoch_start(self, run, epoch):
        self.calls.append(["on_epoch_start", epoch])

    def on_log(self, run, scalars):
        self.calls.append(["on_log", run.state.step])

    def on_step_end(self, run, result):
        self.calls.append(["on_step_end", run.state.step])

    def on_epoch_end(self, run, metrics):
        self.calls.append(["on_epoch_end", run.state.epoch, metrics["val/loss"]])

    def on_fit_end(self, run):
        self.calls.append(["on_fit_end", run.state.epoch])

    def on_test_end(self, run, metrics):
        self.calls.append(["on_test_end", sorted(metrics)])

    def close(self, run, summary):
        self.calls.append(["close", summary["status"]])
        (run.run_dir / "hooks.json").write_text(json.dumps(self.calls))


class Scramble(Callback):
    """Ruins the weights as epoch ``at`` starts: that epoch's val/loss is the worst."""

    def __init__(self, at: int):
        self.at = at

    def on_epoch_start(self, run, epoch):
        if epoch == self.at:
            with torch.no_grad():
                for p in run.model.parameters():
                    p.mul_(0).add_(torch.randn_like(p))
'''


@pytest.fixture(scope="module")
def scrambled(tmp_path_factory) -> Path:
    """Three epochs monitoring val/loss; a user's callback ruins the model at the 3rd."""
    cwd = tmp_path_factory.mktemp("user")
    (cwd / "mycallbacks.py").write_text(USER_CALLBACKS)
    r = run_dlx(
        "train",
        *QUICK,
        "trainer.max_epochs=3",
        "trainer.log_every_n_steps=2",
        "trainer.monitor=val/loss",
        "trainer.progress=false",
        "trainer.callbacks=[mycallbacks.Recorder,{_target_:mycallbacks.Scramble,at:2}]",
        "hydra.run.dir=run",
        cwd=cwd,
    )
    assert r.returncode == 0, r.stderr
    return cwd / "run"


def test_a_users_callbacks_from_the_config_see_every_hook_in_order(scrambled):
    calls = json.loads((scrambled / "hooks.json").read_text())
    names = [c[0] for c in calls]
    assert names[0] == "on_fit_start" and names[-3:] == ["on_fit_end", "on_test_end", "close"]
    assert [c[1] for c in calls if c[0] == "on_epoch_start"] == [0, 1, 2]
    assert [c[1] for c in calls if c[0] == "on_step_end"] == list(range(1, 10))  # 3 x 3 steps
    assert [c[1] for c in calls if c[0] == "on_log"] == [2, 4, 6, 8]
    for i, c in enumerate(calls):  # a log step's figures come before its step-end hooks
        if c[0] == "on_log":
            assert calls[i + 1] == ["on_step_end", c[1]]
    assert calls[-1] == ["close", "completed"]
    assert calls[-2] == ["on_test_end", ["test/acc", "test/loss"]]


def test_monitoring_a_loss_keeps_the_lowest_epoch_and_summary_never_mixes_epochs(scrambled):
    calls = json.loads((scrambled / "hooks.json").read_text())
    val_losses = [c[2] for c in calls if c[0] == "on_epoch_end"]
    assert val_losses[2] == max(val_losses)  # the scrambled epoch: worst by far
    s = read_summary(scrambled)
    best = min(range(3), key=val_losses.__getitem__) + 1
    assert s["best_epoch"] == best and s["best_value"] == min(val_losses)
    # metrics: the best epoch's train and val figures beside the test of its checkpoint
    tags = scalar_tags(scrambled)
    epoch_of = {step: i for i, (step, _) in enumerate(tags["val/loss"])}
    by_epoch = {k: [v for _, v in tags[k]] for k in ("train/loss_epoch", "val/acc", "val/loss")}
    m, last = s["metrics"], s["last"]
    assert math.isclose(m["val/loss"], by_epoch["val/loss"][best - 1], rel_tol=1e-6)
    assert math.isclose(m["train/loss"], by_epoch["train/loss_epoch"][best - 1], rel_tol=1e-6)
    assert math.isclose(last["val/loss"], by_epoch["val/loss"][2], rel_tol=1e-6)
    assert last["val/loss"] != m["val/loss"] and {"test/loss", "test/acc"} <= set(m)
    assert "test/loss" not in last and len(epoch_of) == 3
    ck = torch.load(scrambled / "checkpoints" / "best.pt", weights_only=True)
    assert ck["state"]["best_epoch"] == best


def test_a_callback_that_is_not_one_exits_2_naming_the_key(dlx):
    r = dlx("train", *QUICK, "trainer.callbacks=[collections.OrderedDict]")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "dlx train: error: trainer.callbacks[0]=collections.OrderedDict: not a "
        "dlx.callbacks.Callback subclass"
    ]
    r = dlx("train", *QUICK, "trainer.callbacks=[nowhere.Missing]")
    assert r.returncode == 2
    assert "trainer.callbacks[0]=nowhere.Missing: cannot import nowhere" in r.stderr


@pytest.mark.parametrize(
    "monitor, mode",
    [("val/loss", "min"), ("val/acc", "max"), ("val/mse", "min"), ("val/ppl", "min")],
)
def test_the_mode_follows_the_monitored_metric_unless_set(monitor, mode):
    assert resolve_mode(monitor, "auto") == mode
    assert resolve_mode(monitor, "max") == "max"


def test_state_keeps_the_best_epochs_metrics_by_mode():
    s = State()
    for epoch, loss in enumerate([0.5, 0.3, 0.4]):
        s.end_epoch(epoch, {"val/loss": loss}, loss, "min")
    assert (s.best_epoch, s.best, s.best_metrics, s.metrics) == (
        2,
        0.3,
        {"val/loss": 0.3},
        {"val/loss": 0.4},
    )


# --- the progress bar ---------------------------------------------------------------------------
def test_the_progress_bar_moves_every_step_between_log_steps(monkeypatch):
    import io

    from rich.console import Console

    from dlx.callbacks import progress
    from dlx.engine.board import Progress

    monkeypatch.setattr(progress, "REDRAW_S", 0.0)
    bar = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    run = SimpleNamespace(
        progress=bar,
        trainer=SimpleNamespace(max_epochs=1),
        steps_per_epoch=50,
        state=SimpleNamespace(batch=0),
    )
    cb = progress.ProgressBar()
    cb.on_epoch_start(run, 0)
    for step in range(1, 8):  # no log step among them
        run.state.batch = step  # the loop counts the step (Run.record) before the hook
        cb.on_step_end(run, None)
        assert bar._bar.tasks[-1].completed == step
    bar.stop()


# --- batch norm under DDP ---------------------------------------------------------------------
def _global_bn_rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from dlx.engine.syncbn import sync_batchnorm

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    bn = sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), torch.device("cpu"))
    with torch.no_grad():
        bn[0].weight.uniform_(0.5, 2)
    part = x[rank::world].clone().requires_grad_()
    y = bn(part)
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    dist.all_reduce(bn[0].weight.grad)
    torch.save(
        {
            "y": y.detach(),
            "gx": part.grad,
            "gw": bn[0].weight.grad,
            "rm": bn[0].running_mean,
            "rv": bn[0].running_var,
        },
        f"{out}/{rank}.pt",
    )
    dist.barrier()  # neither rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def test_global_batch_norm_on_two_ranks_equals_batch_norm_on_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    from dlx.engine.distributed import free_port

    mp.spawn(_global_bn_rank, args=(2, free_port(), str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    x = (torch.randn(8, 3, 5, 5) * 3 + 1).requires_grad_()
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    y = bn(x)
    for r, got in enumerate(ranks):
        part = y[r::2]
        (part * torch.arange(part.numel()).view_as(part)).sum().backward(retain_graph=True)
        torch.testing.assert_close(got["y"], part.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["rm"], bn.running_mean)
        torch.testing.assert_close(got["rv"], bn.running_var, rtol=1e-5, atol=1e-6)
    for r, got in enumerate(ranks):
        torch.testing.assert_close(got["gx"], x.grad[r::2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ranks[0]["gw"], bn.weight.grad, rtol=1e-4, atol=1e-4)


def test_a_ddp_step_of_a_batch_norm_net_equals_the_single_process_step(tmp_path):
    """ResNet-20 (batch norm everywhere) on two gloo ranks: the same figures as one process."""
    run = [
        *QUICK,
        "model=resnet",
        "data.image_size=8",
        "trainer.deterministic=true",
        "trainer.progress=false",
    ]
    summaries = []
    for devices in (1, 2):
        r = run_dlx(
            "train", *run, f"trainer.devices={devices}", f"hydra.run.dir=d{devices}", cwd=tmp_path
        )
        assert r.returncode == 0, r.stderr[-2000:]
        summaries.append(read_summary(tmp_path / f"d{devices}"))
    one, two = summaries
    assert two["devices"] == 2
    for k in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
        assert math.isclose(one["metrics"][k], two["metrics"][k], rel_tol=1e-4, abs_tol=1e-5), k


# --- dlx summary --------------------------------------------------------------------------------
def test_summary_takes_an_imagenet_shape_without_a_dataset(dlx):
    r = dlx(
        "summary",
        "model=resnet",
        "model.arch=resnet18",
        "data.image_size=224",
        "data.channels=3",
        "data.num_classes=1000",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "Total params: 11,689,512"  # torchvision's


# --- start-up (the code's shape: test_layout.py) ----------------------------------------------
def test_dlx_help_imports_nothing_heavy():
    import subprocess

    heavy = "('torch', 'hydra', 'tensorboard', 'rich')"
    code = f"import sys; from dlx import cli; print([m for m in {heavy} if m in sys.modules])"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_stop_request_is_checkpointed_so_a_resume_goes_straight_to_the_test(kill_and_resume):
    """Early stopping fires, the process dies before the test: the resume tests, trains no more."""
    run = [
        *QUICK,
        "trainer.max_epochs=6",
        "trainer.progress=false",
        "optim.lr=0",
        "regularization=[early_stopping]",
        "regularization.early_stopping.patience=2",
    ]
    cut = kill_and_resume.kill(*run, at=9)  # last.pt of epoch 3
    ck = torch.load(cut / "checkpoints" / "last.pt", weights_only=True)
    assert ck["state"]["stop"][0] == "stopped_early" and ck["state"]["epoch"] == 3
    s = kill_and_resume.resume()
    assert s["status"] == "stopped_early" and s["epochs"] == 3 and "test/acc" in s["metrics"]
