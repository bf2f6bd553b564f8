"""Nothing cryptic, nothing unsafe: refused and broken checkpoints, atomic writes, divergence,
malformed overrides (property-based), distinct run dirs, safe defaults."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import QUICK, read_summary, run_dlx, scalar_tags
from conftest import one_line as _one_line
from dlx import cli
from dlx.engine import checkpoint
from dlx.engine.meter import MAX_HELD, MAX_HELD_BYTES, MAX_PENDING, TrainMeter, epoch_metrics
from dlx.engine.nonfinite import Diverged, masked_step, zero_nonfinite_grads
from dlx.engine.objective import Objective
from dlx.errors import RunFailed

QUIET = [*QUICK, "trainer.progress=false"]


# --- checkpoints ------------------------------------------------------------------------------
class Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_checkpoint_with_pickle_payload_is_refused_and_never_runs(tmp_path, finished, command):
    marker = tmp_path / "pwned"
    name = "best.pt" if command == "eval" else "last.pt"
    ckpt = finished / "checkpoints" / name
    good = ckpt.read_bytes()
    try:
        torch.save({"model": {}, "evil": Payload(marker)}, ckpt)
        summary = (finished / "summary.json").read_bytes()
        (finished / "summary.json").write_text('{"status": "interrupted"}')
        r = run_dlx(command, str(finished), cwd=tmp_path)
        (finished / "summary.json").write_bytes(summary)
    finally:
        ckpt.write_bytes(good)
    assert r.returncode in (1, 2)
    line = _one_line(r.stderr)
    assert str(ckpt) in line and "refused" in line
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_truncated_or_foreign_checkpoint_is_one_line(tmp_path, finished, damage):
    ckpt = finished / "checkpoints" / "best.pt"
    good = ckpt.read_bytes()
    try:
        ckpt.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"hello, world\n")
        r = run_dlx("eval", str(finished), cwd=tmp_path)
    finally:
        ckpt.write_bytes(good)
    assert r.returncode in (1, 2)
    assert str(ckpt) in _one_line(r.stderr)


def test_failed_write_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"model": {"w": torch.ones(3)}})

    def full_disk(obj, f):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        checkpoint.save(path, {"model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert torch.equal(checkpoint.load(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoints_hold_plain_data_only(finished):
    for name in ("last.pt", "best.pt"):
        ck = torch.load(finished / "checkpoints" / name, weights_only=True)
        assert {"model", "optimizer", "state", "rng", "meter", "config"} <= set(ck)
        assert isinstance(ck["rng"]["numpy"]["keys"], torch.Tensor)


def test_load_names_the_file(tmp_path):
    with pytest.raises(RunFailed, match=r"nope\.pt: no such file"):
        checkpoint.load(tmp_path / "nope.pt")


# --- divergence -------------------------------------------------------------------------------
def test_divergence_stops_with_step_and_last_finite_loss_and_keeps_best(dlx):
    # sgd at lr=100, batch 64: finite through epoch 1, blows up at step 4 (epoch 2)
    r = dlx(
        "train",
        *QUIET,
        "data.batch_size=64",
        "trainer.log_every_n_steps=5",
        "optim=sgd",
        "optim.lr=100",
        "hydra.run.dir=run",
    )
    assert r.returncode == 1
    run = dlx.cwd / "run"
    s = read_summary(run)
    assert s["status"] == "diverged"
    assert "non-finite loss at step 4; last finite loss" in s["error"]
    assert "non-finite loss at step 4" in r.stderr
    # the summary keeps what was trained before it went wrong
    assert s["epochs"] == 1 and s["best_epoch"] == 1 and "val/acc" in s["metrics"]
    best = checkpoint.load(run / "checkpoints" / "best.pt")
    assert best["state"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in best["model"].values())


def _hits(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred == target).sum(dtype=torch.float32).reshape(1)  # an objective's stats


def _record(meter: TrainMeter, step: int, loss: float, pred: list[int], target: list[int]):
    t = torch.tensor(loss, requires_grad=True)
    return meter.record(step, t, t, torch.tensor(pred), torch.tensor(target), len(pred))


def test_meter_stops_at_the_first_bad_step_naming_the_last_finite_loss_before_it():
    meter = TrainMeter(torch.device("cpu"), _hits, last_finite=0.5)
    _record(meter, 1, 2.0, [1, 2], [1, 0])
    _record(meter, 2, 1.5, [0, 0], [0, 0])
    meter.sync()
    assert meter.last_finite == 1.5
    for step, value in [(3, 1.25), (4, math.inf), (5, 1.0), (6, math.nan)]:
        _record(meter, step, value, [0, 0], [0, 0])
    with pytest.raises(Diverged, match=r"^non-finite loss at step 4; last finite loss 1\.25$"):
        meter.sync()


def test_meter_skips_bad_steps_in_the_sums_and_counts_them():
    meter = TrainMeter(torch.device("cpu"), _hits, skip_nonfinite=True, skipped=2)
    _record(meter, 1, 1.0, [1, 2, 3], [1, 2, 0])  # 2 of 3 right
    _record(meter, 2, math.nan, [5, 5], [5, 5])  # skipped: counts for nothing
    _record(meter, 3, 0.5, [4], [4])
    summarise = Objective(None).summarise  # type: ignore[arg-type]
    assert epoch_metrics(meter.state_dict(), summarise) == {
        "train/loss": 3.5 / 4,
        "train/acc": 3 / 4,
    }
    assert (meter.last_finite, meter.skipped) == (0.5, 3)


def test_meter_sums_do_not_depend_on_where_the_syncs_fall():
    losses = torch.rand(50, generator=torch.Generator().manual_seed(0)).tolist()
    sums = []
    for every in (1, 7, 50):
        meter = TrainMeter(torch.device("cpu"), _hits)
        for step, value in enumerate(losses, 1):
            _record(meter, step, value, [step % 3], [0])
            if step % every == 0:
                meter.sync()
        sums.append(meter.state_dict())
    assert all(s == sums[0] for s in sums[1:])  # bit for bit, hence exact resume
    assert int(sums[0]["stats"][0]) == 16 and int(sums[0]["seen"]) == 50


def test_meter_asks_for_a_sync_and_counts_early_when_too_much_is_waiting():
    meter = TrainMeter(torch.device("cpu"), _hits)
    due = [_record(meter, s, 1.0, [0], [0]) for s in range(1, MAX_PENDING + 1)]
    assert due == [False] * (MAX_PENDING - 1) + [True]
    meter.sync()  # losses read; the outputs wait to be counted
    assert len(meter.held) == MAX_PENDING and int(meter.sums[0]) == 0
    for s in range(MAX_PENDING + 1, MAX_HELD + 1):
        _record(meter, s, 1.0, [0], [0])
    meter.sync()  # MAX_HELD steps' outputs held: counted now
    assert meter.held == [] and int(meter.sums[0]) == MAX_HELD

    big = torch.zeros(MAX_HELD_BYTES // 4 // 6 + 1)  # outputs and targets: a third, and more
    loss = torch.tensor(1.0)
    assert [meter.record(s, loss, loss, big, big, 1) for s in (1, 2, 3)] == [False, False, True]
    meter.sync()
    assert meter.held == [] and meter.held_bytes == 0


def test_on_nonfinite_skip_skips_and_counts(dlx):
    r = dlx(
        "train",
        *QUIET,
        "optim=sgd",
        "optim.lr=1e30",
        "trainer.on_nonfinite=skip",
        "hydra.run.dir=run",
    )
    assert r.returncode == 0, r.stderr
    run = dlx.cwd / "run"
    s = read_summary(run)
    assert s["status"] == "completed" and s["skipped_steps"] >= 1
    loss = s["metrics"]["train/loss"]  # skipped batches count for nothing in the epoch's mean
    assert loss == loss and abs(loss) != float("inf")
    skipped = scalar_tags(run)["train/skipped_steps"]
    assert skipped[-1][1] == s["skipped_steps"]
    last = checkpoint.load(run / "checkpoints" / "last.pt")
    assert all(torch.isfinite(t).all() for t in last["model"].values())


# --- malformed overrides: property-based ------------------------------------------------------
IDENT = st.from_regex(r"zz[a-z_]{1,8}", fullmatch=True)
GARBAGE = st.from_regex(r"[a-zA-Z][a-zA-Z_]{0,8}", fullmatch=True).filter(
    lambda s: (
        s.lower()
        not in {"true", "false", "null", "none", "nan", "inf", "yes", "no", "on", "off", "y", "n"}
    )
)
INT_KEYS = [
    "trainer.max_epochs",
    "trainer.limit_train_batches",
    "trainer.log_every_n_steps",
    "data.batch_size",
    "trainer.checkpoint_every_n_steps",
]
CHOICE_KEYS = ["trainer.device", "trainer.precision", "trainer.mode", "trainer.on_nonfinite"]
GROUPS = ["model", "optim", "sched", "data", "trainer"]

MALFORMED = st.one_of(
    st.builds(lambda g, k: f"{g}.{k}=1", st.sampled_from(GROUPS), IDENT),  # unknown key
    st.builds(lambda k: f"+{k}=1", IDENT),  # unknown top-level key
    st.builds(lambda g, o: f"{g}={o}", st.sampled_from(GROUPS), IDENT),  # unknown option
    st.builds(lambda o: f"regularization=[{o}]", IDENT),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(INT_KEYS), GARBAGE),  # wrong type
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(INT_KEYS), st.integers(-(10**6), 0)),
    st.builds(lambda v: f"optim.lr={v}", st.floats(max_value=-1e-9, allow_nan=False)),  # range
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(CHOICE_KEYS), IDENT),  # not a choice
    st.sampled_from(
        [
            "trainer.seed=[",
            "=5",
            "trainer..seed=1",
            "trainer.seed=1,2",
            "optim.lr=)",
            "trainer.max_epochs={",
            "model=",
            "~zz",
        ]
    ),  # syntax
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bad=MALFORMED, valid=st.sampled_from([[], ["optim=sgd"], ["trainer.seed=3"]]))
def test_malformed_overrides_exit_2_with_one_line(tmp_path, monkeypatch, capsys, bad, valid):
    monkeypatch.chdir(tmp_path)
    args = ["train", *valid, *QUIET, bad, f"hydra.run.dir={tmp_path}/run"]  # bad one wins
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, (args, err)
    _one_line(err)


# --- run dirs, defaults -----------------------------------------------------------------------
def test_two_runs_started_at_once_get_different_dirs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [
        sys.executable,
        "-m",
        "dlx",
        "train",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.progress=false",
    ]
    procs = [
        subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    dirs = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(dirs) == 2
    assert all(read_summary(d)["status"] == "completed" for d in dirs)


def test_tb_binds_localhost_unless_told_otherwise():
    from dlx.commands.verbs import tb_argv

    argv = tb_argv([])
    assert argv[argv.index("--logdir") + 1] == "outputs"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "127.0.0.1" not in tb_argv(["runs", "--bind_all"])
    argv = tb_argv(["runs", "--host", "0.0.0.0"])
    assert argv.count("--host") == 1 and "0.0.0.0" in argv


def test_no_dataset_downloads_by_default():
    from omegaconf import OmegaConf

    from dlx.commands.runs import compose
    from dlx.sweep.compose import group_options

    for option in group_options("data"):
        cfg = compose([f"data={option}"])
        assert OmegaConf.select(cfg, "data.download", default=False) is False, option


def test_meter_copies_outputs_that_the_model_will_overwrite():
    # CUDA graphs reuse their output memory on the next step; the meter must keep a copy
    for copy, expected in ((True, 2), (False, 0)):
        meter = TrainMeter(torch.device("cpu"), _hits, copy_outputs=copy)
        out = torch.tensor([1, 2])
        loss = torch.tensor(0.5)
        meter.record(1, loss, loss, out, out.clone(), 2)
        out.fill_(7)  # the next replay writes over the same memory
        assert int(meter.state_dict()["stats"][0]) == expected


@pytest.mark.parametrize("optim", ["adam", "sgd_momentum"])
def test_a_skipped_step_leaves_parameters_and_optimizer_state_as_they_were(optim):
    def make() -> tuple[torch.nn.Linear, torch.optim.Optimizer]:
        torch.manual_seed(0)
        lin = torch.nn.Linear(3, 2)
        if optim == "adam":
            return lin, torch.optim.Adam(lin.parameters(), lr=0.1)
        return lin, torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)

    def train(model, opt, finite_flags: list[bool]) -> None:
        params = list(model.parameters())
        for ok in finite_flags:
            model(torch.ones(4, 3)).sum().backward()
            finite = torch.tensor(ok)
            zero_nonfinite_grads(params, finite)
            masked_step(opt, params, finite, lambda o: o.step())
            opt.zero_grad(set_to_none=True)

    ref, ref_opt = make()
    train(ref, ref_opt, [True, True])
    got, got_opt = make()
    train(got, got_opt, [False, True, False, True, False])  # skipped first, between, last
    for a, b in zip(ref.parameters(), got.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ref_opt.state.values(), got_opt.state.values(), strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)  # Adam's step count included


# --- checkpoints written in the background ------------------------------------------------------
def test_background_checkpoints_are_snapshots_and_a_failed_write_keeps_the_previous(
    tmp_path, monkeypatch
):
    path = tmp_path / "last.pt"
    w = checkpoint.Writer()
    weights = torch.ones(1000)
    w.submit(path, {"model": {"w": weights}})
    weights.mul_(0)  # training goes on in place while the file is written
    w.wait()
    assert torch.equal(checkpoint.load(path)["model"]["w"], torch.ones(1000))

    def full_disk(fd):  # the disk fills while the bytes go down (on the writer's thread)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full_disk)
    w.submit(path, {"model": {"w": weights}})
    with pytest.raises(RunFailed, match=r"checkpoint not written: .*No space left"):
        w.wait()
    assert torch.equal(checkpoint.load(path)["model"]["w"], torch.ones(1000))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_failed_write_fails_the_next_checkpoint_not_the_end_of_the_run(tmp_path, monkeypatch):
    w = checkpoint.Writer()

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    w.call(full_disk)
    w._jobs.join()  # the job has run (and failed) on the writer's thread
    with pytest.raises(RunFailed, match="No space left"):
        w.submit(tmp_path / "last.pt", {"model": {}})  # the next checkpoint says so at once
    w.close()
    assert w._thread is None  # the thread is gone, not parked forever


def test_a_checkpoint_copy_is_a_link_that_a_later_write_of_either_name_leaves_alone(tmp_path):
    from dlx.engine import checkpoint

    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    checkpoint.save(best, {"model": {"w": torch.ones(3)}})
    checkpoint.copy(best, last)
    assert best.stat().st_ino == last.stat().st_ino  # one file on disk, two names
    checkpoint.save(last, {"model": {"w": torch.zeros(3)}})  # the next epoch's last.pt
    assert torch.equal(checkpoint.load(best)["model"]["w"], torch.ones(3))
    assert torch.equal(checkpoint.load(last)["model"]["w"], torch.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
