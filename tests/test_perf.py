"""Performance and scale on the CPU: throughput and peak memory in summary.json, mixed
precision, channels_last, torch.compile, DDP with gloo (``trainer.devices=2`` and torchrun),
its resume, and the profiler."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import QUICK, read_summary, run_dlx, scalar_tags

#: tiny deterministic runs, LeNet on digits (no batch norm: one process and two agree closely)
RUN = [*QUICK, "trainer.deterministic=true", "trainer.progress=false"]
KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc")


def run_inprocess(tmp: Path, *overrides: str) -> dict:
    from dlx.commands.runs import compose
    from dlx.engine.loop import run

    return run(compose([*RUN, *overrides]), tmp, quiet=True)


def assert_close(a: dict, b: dict, rel: float = 1e-4) -> None:
    for k in KEYS:
        assert math.isclose(a["metrics"][k], b["metrics"][k], rel_tol=rel, abs_tol=1e-6), k


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    """The reference: one process, global batch 64."""
    return run_inprocess(tmp_path_factory.mktemp("single") / "run")


# --- summary.json: throughput and memory; precision; channels_last ---------------------------
def test_bf16_channels_last_run_reports_throughput_and_peak_memory(dlx):
    r = dlx(
        "train",
        *QUICK,
        "data.batch_size=64",
        "trainer.precision=bf16-mixed",
        "trainer.channels_last=true",
    )
    assert r.returncode == 0, r.stderr
    assert "dlx run" in r.stdout  # the end-of-run table (not quiet)
    run_dir = next((dlx.cwd / "outputs" / "runs").iterdir())
    s = read_summary(run_dir)
    assert s["status"] == "completed"
    assert all(math.isfinite(s["metrics"][k]) for k in KEYS)
    # 2 epochs x 3 batches x 64 samples, over the seconds inside training steps only
    assert s["samples_per_s"] > 0 and 0 < s["train_time_s"] < s["duration_s"]
    assert s["samples_per_s"] * s["train_time_s"] == pytest.approx(2 * 3 * 64, rel=1e-3)
    assert s["peak_mem_kind"] == "cpu_max_rss" and s["peak_mem_mb"] > 50


def test_fp16_mixed_uses_the_grad_scaler_and_quiet_prints_no_table(tmp_path, capsys):
    s = run_inprocess(tmp_path / "run", "trainer.precision=16-mixed", "trainer.max_epochs=1")
    assert s["status"] == "completed", s.get("error")
    assert all(math.isfinite(v) for v in s["metrics"].values())
    scaler = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)["scaler"]
    assert scaler["scale"] > 0  # an enabled GradScaler's state (a disabled one saves {})
    assert "dlx run" not in capsys.readouterr().out


def test_channels_last_inputs_and_model_are_channels_last():
    from dlx.data.base import DataInfo
    from dlx.engine.inputs import Inputs

    info = DataInfo("t", "image", 10, channels=3, image_size=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    x = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    out, _ = Inputs(info, torch.device("cpu"), channels_last=True)(x, torch.zeros(4))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()


# --- torch.compile -------------------------------------------------------------------------------
def test_compiled_model_trains_like_the_eager_one():
    """Three SGD steps of a tiny conv net, eager and through ``compile_model`` with the mode
    the config names: the same losses within float tolerance. (A whole compiled LeNet run
    takes ~40 s of C++ compilation on a cold cache: too slow for the suite.)"""
    from dlx.commands.runs import compose
    from dlx.engine.device import compile_model
    from dlx.registry import to_schema
    from dlx.trainer import TrainerConfig

    cfg = compose(["trainer.compile=true", "trainer.compile_mode=reduce-overhead"])
    trainer = to_schema(cfg.trainer, TrainerConfig, "trainer")

    def losses(compiled: bool) -> list[float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
        net = compile_model(model, trainer.compile, trainer.compile_mode) if compiled else model
        assert (net is not model) == compiled
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)
        out = []
        for _ in range(3):
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    eager, compiled = losses(False), losses(True)
    assert eager[-1] < eager[0]
    assert compiled == pytest.approx(eager, rel=1e-5)


def test_bad_compile_mode_and_devices_are_usage_errors(tmp_path):
    from dlx.errors import UsageError

    with pytest.raises(UsageError, match=r"trainer\.compile_mode.*reduce-overhead"):
        run_inprocess(tmp_path / "a", "trainer.compile_mode=fast")
    with pytest.raises(UsageError, match=r"trainer\.devices"):
        run_inprocess(tmp_path / "b", "trainer.devices=0")


# --- DDP with gloo ----------------------------------------------------------------------------
def test_two_processes_train_like_one_and_only_rank_0_writes(tmp_path, single):
    r = run_dlx("train", *RUN, "trainer.devices=2", "hydra.run.dir=two", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "two"
    two = read_summary(run_dir)
    assert two["status"] == "completed" and two["devices"] == 2
    assert_close(two, single)
    assert two["samples_per_s"] > 0
    names = sorted(p.name for p in run_dir.iterdir())
    events = [n for n in names if n.startswith("events.out.tfevents")]
    assert len(events) == 1, names
    assert set(names) - set(events) == {
        ".dlx.lock",  # rank 0 held it while training (dlx runs: `dead` when nobody does)
        ".hydra",
        "checkpoints",
        "summary.json",
        "train.log",
        "metrics.csv",
        "provenance.json",
    }
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    loss = scalar_tags(run_dir)["train/loss"]  # reduced over the ranks at every log step
    assert [s for s, _ in loss] == [1, 2, 3, 4, 5, 6]


def test_torchrun_ranks_share_rank_0s_run_dir(tmp_path, single):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    r = subprocess.run(
        [*cmd, "-m", "dlx", "train", *RUN],  # no hydra.run.dir: each rank's Hydra makes one
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    dirs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(dirs) == 1, dirs  # rank 1's empty Hydra dir is gone
    s = read_summary(dirs[0])
    assert s["devices"] == 2
    assert_close(s, single)


def test_two_torchrun_nodes_over_a_c10d_rendezvous_train_like_one_process(tmp_path, single):
    """Two "machines" on loopback, one rank each, meeting through torchrun's c10d rendezvous:
    what a cluster's nodes run, each with its own torchrun."""
    from dlx.engine.distributed import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    rdzv = ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--rdzv-id=t"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
    nodes = [
        subprocess.Popen(
            [*cmd, *rdzv, "-m", "dlx", "train", *RUN, "hydra.run.dir=run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    s = read_summary(tmp_path / "run")
    assert s["devices"] == 2 and s["status"] == "completed"
    assert_close(s, single)


def test_killed_ddp_run_resumes_on_both_ranks(tmp_path, single):
    r = run_dlx(
        "train",
        *RUN,
        "trainer.devices=2",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env={"DLX_TEST_KILL_AT_STEP": "3"},  # rank 0 SIGKILLs itself after epoch 1's last.pt
        timeout=120,
    )
    assert r.returncode == -9, r.stderr
    assert not (tmp_path / "run" / "summary.json").exists()
    r = run_dlx("resume", "run", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    s = read_summary(tmp_path / "run")
    assert s["status"] == "completed" and s["epochs"] == 2 and s["devices"] == 2
    assert_close(s, single)


def test_global_batch_must_split_evenly_before_any_rank_starts(tmp_path):
    from dlx.errors import UsageError

    with pytest.raises(UsageError, match=r"data.batch_size=63: .* multiple of 2"):
        run_inprocess(tmp_path / "run", "trainer.devices=2", "data.batch_size=63")
    assert "WORLD_SIZE" not in os.environ  # nothing started, nothing left behind


# --- profiler ---------------------------------------------------------------------------------
def test_profile_writes_a_chrome_trace_prints_top_ops_and_trains_on(dlx):
    r = dlx("train", *RUN, "trainer.profile=true", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr
    trace = json.loads((dlx.cwd / "run" / "profile" / "trace.json").read_text())
    names = {e.get("name", "") for e in trace["traceEvents"]}
    assert any("conv" in n for n in names), sorted(names)[:20]
    assert "profile: top ops by self CPU time" in r.stdout
    assert "self CPU ms" in r.stdout and "aten::" in r.stdout
    assert "ProfilerStep" not in r.stdout  # the step markers are not ops
    s = read_summary(dlx.cwd / "run")
    assert s["status"] == "completed" and s["epochs"] == 2  # the run went on after profiling


def test_tensorboard_scalars_are_held_then_written_in_order_with_their_wall_times(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dlx.engine.board import TensorBoard

    tb = TensorBoard(tmp_path)
    tb.scalars({"a": 1.0, "b": 2.0}, 1)
    wall = time.time()
    time.sleep(0.05)
    tb.scalars({"a": 3.0}, 2)
    tb.writer.flush()  # the writer's own flush: nothing handed over yet
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert acc.Tags()["scalars"] == []
    tb.flush()
    acc.Reload()
    a = acc.Scalars("a")
    assert [(e.step, e.value) for e in a] == [(1, 1.0), (2, 3.0)]
    assert [(e.step, e.value) for e in acc.Scalars("b")] == [(1, 2.0)]
    assert a[0].wall_time <= wall < a[1].wall_time  # when logged, not when handed over

    tb.HOLD_S = 0.0  # past the hold: handed over as logged
    tb.scalars({"a": 4.0}, 3)
    tb.writer.flush()
    acc.Reload()
    assert [e.step for e in acc.Scalars("a")] == [1, 2, 3]
    tb.close()
