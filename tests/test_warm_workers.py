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

from conftest import dlx_env, read_summary
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


LINUX = pytest.mark.skipif(sys.platform != "linux", reason="a fork server (and /proc): Linux")
PARALLEL = [*JOBLIB, "hydra.launcher.n_jobs=2", "optim.lr=0.1,0.2"]


def _server(pid: int) -> dict[str, object]:
    """The fork server ``pid`` once it has exec'd: its environment and ignored signals."""
    deadline, cmdline = time.monotonic() + 10, Path(f"/proc/{pid}/cmdline")
    while b"multiprocessing.forkserver import main" not in cmdline.read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    ignored = int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return {"environ": environ, "ignores_ctrl_c": bool(ignored & (1 << (signal.SIGINT - 1)))}


@LINUX
def test_the_server_lasts_the_call_and_loky_forks_from_it_meanwhile(monkeypatch):
    from multiprocessing import forkserver

    import joblib.externals.loky as loky
    from joblib.externals.loky.backend import context

    monkeypatch.setattr(warm, "PRELOAD", ["json"])  # a cheap server
    monkeypatch.setattr(loky, "cpu_count", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before, handler = context.get_start_method(), signal.getsignal(signal.SIGINT)
    with warm.forked_workers(PARALLEL):
        pid = forkserver._forkserver._forkserver_pid
        assert pid is not None and context.get_start_method() == "forkserver"
        server = _server(pid)
        assert b"OMP_NUM_THREADS=1" in server["environ"]  # 2 cores, 2 workers: joblib's limit
        assert server["ignores_ctrl_c"]  # an interrupted import would print a traceback
        assert "OMP_NUM_THREADS" not in os.environ  # the command's own is unchanged
        assert signal.getsignal(signal.SIGINT) is handler
    assert context.get_start_method() == before
    assert forkserver._forkserver._forkserver_pid is None
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped, not left to its teardown
    with pytest.raises(KeyError), warm.forked_workers(PARALLEL):  # a failed call, a new server
        assert forkserver._forkserver._forkserver_pid not in (None, pid)
        raise KeyError
    assert context.get_start_method() == before and forkserver._forkserver._forkserver_pid is None
    with warm.forked_workers(["-m", "optim.lr=0.1,0.2"]):  # the basic launcher
        assert forkserver._forkserver._forkserver_pid is None


@LINUX
def test_a_fork_server_someone_else_started_is_left_alone(monkeypatch):
    from multiprocessing import forkserver

    from joblib.externals.loky.backend import context

    monkeypatch.setattr(warm, "PRELOAD", ["json"])
    forkserver.set_forkserver_preload([])
    forkserver.ensure_running()
    theirs = forkserver._forkserver._forkserver_pid
    try:
        with warm.forked_workers(PARALLEL):
            assert context.get_start_method() != "forkserver"  # loky starts its own workers
        assert forkserver._forkserver._forkserver_pid == theirs
        assert Path(f"/proc/{theirs}").exists()
    finally:
        forkserver._forkserver._stop()


def _start_train(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """``dlx train ARGS`` in its own process group, as a shell's foreground job."""
    return subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


RECORDER = """
import json, os, torch
from dlx.callbacks import Callback

class RecordProcess(Callback):
    def on_fit_start(self, run):
        parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\\0", b" ")
        record = {"pid": os.getpid(), "parent": parent.decode(), "threads": torch.get_num_threads()}
        (run.run_dir / "process.json").write_text(json.dumps(record))
"""


@LINUX
def test_a_parallel_sweeps_trials_run_in_workers_forked_from_the_preloaded_server(tmp_path):
    import joblib.externals.loky as loky

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
    proc = _start_train(args, tmp_path, env)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    records = [json.loads((tmp_path / "sweep" / t / "process.json").read_text()) for t in "012"]
    for record in records:
        assert "multiprocessing.forkserver" in record["parent"], record
        assert all(name in record["parent"] for name in warm.PRELOAD), record
        assert record["threads"] == max(loky.cpu_count() // 2, 1), record
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


@LINUX
def test_ctrl_c_on_a_parallel_sweep_lets_every_trial_save_and_record_itself(tmp_path):
    """Ctrl-C reaches the whole group: each trial under way saves ``last.pt`` and writes its
    ``summary.json``, no queued trial starts, and the main process waits for the trials before
    joblib stops its workers (at once, it killed a worker before its summary when another
    trial ended first; an idle worker that died of Ctrl-C broke the pool)."""
    args = [
        *JOBLIB,
        "hydra.launcher.n_jobs=2",
        "trainer.max_epochs=1,300,300,300,300",  # trial 0 ends: its worker takes trial 2
        "trainer.progress=false",
        "hydra.sweep.dir=sweep",
    ]
    proc = _start_train(args, tmp_path, dlx_env())
    sweep = tmp_path / "sweep"
    csvs = [sweep / t / "metrics.csv" for t in "12"]
    deadline = time.monotonic() + 120
    while not all(c.is_file() and len(c.read_text().splitlines()) >= 3 for c in csvs):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C
    asked = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert time.monotonic() - asked < 9, "the trials' own pace, not the 10 s wait's end"
    assert read_summary(sweep / "0")["status"] == "completed"
    for t in "12":
        assert read_summary(sweep / t)["status"] == "interrupted"
        assert (sweep / t / "checkpoints" / "last.pt").is_file()
    for t in "34":  # queued at the Ctrl-C: never trained (a worker that took one drops its
        # dir; joblib may stop it first, leaving Hydra's dir without a run in it)
        for trace in ("checkpoints", "metrics.csv", "summary.json"):
            assert not (sweep / t / trace).exists(), f"trial {t} started after Ctrl-C"
    assert "Traceback" not in stderr
