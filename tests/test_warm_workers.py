"""Parallel trials start warm: a ``hydra/launcher=joblib`` sweep's workers fork from a server
that imported torch and the engine once (``dlx.sweep.warm``). Correctness only: the figures
are ``bench/sweep_cost.py``'s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import dlx_env
from dlx.sweep import warm

JOBLIB = ["-m", "hydra/launcher=joblib"]


@pytest.mark.parametrize(
    ("args", "workers"),
    [
        ([*JOBLIB, "hydra.launcher.n_jobs=2"], 2),
        ([*JOBLIB], 8),  # the launcher's default: all cores
        ([*JOBLIB, "hydra.launcher.n_jobs=-2"], 7),  # all but one
        (["--multirun", "+hydra/launcher=joblib", "hydra.launcher.n_jobs=3"], 3),
        ([*JOBLIB, "hydra.launcher.n_jobs=1"], 1),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 0),  # a single run
        (["-m", "hydra.launcher.n_jobs=2"], 0),  # the basic launcher
        ([*JOBLIB, "hydra.launcher.n_jobs=two"], 0),  # Hydra says what is wrong
        ([*JOBLIB, "--cfg", "job"], 0),  # prints, runs nothing
        ([*JOBLIB, "--help"], 0),
    ],
)
def test_the_workers_a_command_asks_for(args, workers):
    assert warm.parallel_workers(args, cpus=8) == workers


def test_the_server_lasts_the_call_and_loky_forks_from_it_meanwhile(monkeypatch):
    from multiprocessing import forkserver

    from joblib.externals.loky.backend import context

    monkeypatch.setattr(warm, "PRELOAD", ["json"])  # a cheap server
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = context.get_start_method()
    with warm.forked_workers([*JOBLIB, "hydra.launcher.n_jobs=2", "optim.lr=0.1,0.2"]):
        pid = forkserver._forkserver._forkserver_pid
        assert pid is not None and Path(f"/proc/{pid}").exists()
        assert context.get_start_method() == "forkserver"
        deadline = time.monotonic() + 10  # forked: its own environment once it has exec'd
        while b"forkserver" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"OMP_NUM_THREADS=1" in environ  # 2 cores, 2 workers: joblib's own limit
        assert "OMP_NUM_THREADS" not in os.environ  # the command's own is unchanged
    assert context.get_start_method() == before
    assert forkserver._forkserver._forkserver_pid is None
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped, not left to its teardown
    with warm.forked_workers(["-m", "optim.lr=0.1,0.2"]):  # the basic launcher
        assert forkserver._forkserver._forkserver_pid is None


RECORDER = """
import json, os, torch
from dlx.callbacks import Callback

class RecordProcess(Callback):
    def on_fit_start(self, run):
        parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\\0", b" ")
        record = {"pid": os.getpid(), "parent": parent.decode(), "threads": torch.get_num_threads()}
        (run.run_dir / "process.json").write_text(json.dumps(record))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a fork server needs fork")
def test_a_parallel_sweeps_trials_run_in_workers_forked_from_the_preloaded_server(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    env = dlx_env()
    env.pop("OMP_NUM_THREADS")  # the launcher divides the cores
    args = [
        *JOBLIB,
        "hydra.launcher.n_jobs=2",
        "optim.lr=0.01,0.003,0.001",
        "trainer.callbacks=[recorder.RecordProcess]",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.progress=false",
        "hydra.sweep.dir=sweep",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    records = [json.loads((tmp_path / "sweep" / t / "process.json").read_text()) for t in "012"]
    for record in records:
        assert "multiprocessing.forkserver" in record["parent"], record
        assert all(name in record["parent"] for name in warm.PRELOAD), record
        cpus = len(os.sched_getaffinity(0))
        assert record["threads"] == max(cpus // 2, 1), record
    assert len({r["pid"] for r in records}) <= 2  # two workers, each kept between trials
    assert len(json.loads((tmp_path / "sweep" / "sweep.json").read_text())["trials"]) == 3
    deadline = time.monotonic() + 5  # multiprocessing's resource trackers leave on their own
    while (left := _of_sweep(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, "the fork server and its workers end with the sweep"


def _of_sweep(main_pid: int) -> list[str]:
    """The command lines of live processes started for the sweep of ``main_pid``."""
    found = []
    for p in Path("/proc").iterdir():
        try:
            if f"DLX_SWEEP_PID={main_pid}".encode() not in (p / "environ").read_bytes():
                continue
            if (p / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append((p / "cmdline").read_bytes().decode(errors="replace"))
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="Ctrl-C reaches a process group")
def test_ctrl_c_on_a_parallel_sweep_lets_every_trial_save_and_record_itself(tmp_path):
    """Ctrl-C reaches the whole group: each worker saves ``last.pt`` and writes its
    ``summary.json``; the main process waits for them before joblib stops its workers (at
    once, it killed the second worker before its summary when the first trial ended first)."""
    args = [
        *JOBLIB,
        "hydra.launcher.n_jobs=2",
        "optim=sgd,adam",
        "trainer.max_epochs=200",
        "trainer.progress=false",
        "hydra.sweep.dir=sweep",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", *args],
        cwd=tmp_path,
        env=dlx_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a shell's foreground job
    )
    csvs = [tmp_path / "sweep" / t / "metrics.csv" for t in "01"]
    deadline = time.monotonic() + 120
    while not all(c.is_file() and len(c.read_text().splitlines()) >= 3 for c in csvs):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    for t in "01":
        trial = tmp_path / "sweep" / t
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] == "interrupted", summary
        assert (trial / "checkpoints" / "last.pt").is_file()
    assert "Traceback" not in stderr
