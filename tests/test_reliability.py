"""Nothing lost: a run dir is never overwritten, a refused config leaves no run dir, a sweep
dies whole, signals stop every phase with the right exit code, a killed run shows as dead."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUICK, read_summary, run_dlx
from conftest import one_line as _one_line
from conftest import start_dlx as _start

QUIET = [*QUICK, "trainer.progress=false"]


def _wait_for(test, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(proc.communicate())
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _handles(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` installed (``/proc``'s SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


# --- 1. a run dir is never overwritten ---------------------------------------------------------
def test_a_run_dir_holding_a_run_is_refused_and_overwrite_moves_it_aside(dlx):
    assert dlx("train", *QUIET, "hydra.run.dir=run").returncode == 0
    run = dlx.cwd / "run"
    before = {p: p.read_bytes() for p in (run / "summary.json", run / "checkpoints/best.pt")}

    r = dlx("train", *QUIET, "optim=sgd", "hydra.run.dir=run")
    line = _one_line(r.stderr)
    assert r.returncode == 2
    for part in ("hydra.run.dir=run", "status completed", "dlx resume run", "trainer.overwrite"):
        assert part in line, line
    assert {p: p.read_bytes() for p in before} == before  # nothing of the old run touched

    r = dlx("train", *QUIET, "optim=sgd", "trainer.overwrite=true", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr
    (aside,) = dlx.cwd.glob("run.old-*")
    assert (aside / "summary.json").read_bytes() == before[run / "summary.json"]
    assert "optim=sgd" in (run / ".hydra" / "overrides.yaml").read_text()
    assert "optim=sgd" not in (aside / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.parametrize(
    "bad",
    [
        ["optim.lr=abc"],  # refused by the schema before Hydra makes the dir
        ["data=cifar10"],  # refused while the run builds (no files): the dir is removed again
    ],
)
def test_a_refused_config_leaves_no_run_dir(dlx, bad):
    r = dlx("train", *QUIET, *bad)
    assert r.returncode == 2
    _one_line(r.stderr)
    runs = dlx.cwd / "outputs" / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


# --- 2. a sweep dies whole ---------------------------------------------------------------------
def _sweep_processes(main_pid: int) -> list[int]:
    """Processes started for the sweep whose main process is ``main_pid`` (they carry
    ``DLX_SWEEP_PID=<main_pid>`` in their environment), the main one included."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            env = (p / "environ").read_bytes().split(b"\0")
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"DLX_SWEEP_PID={main_pid}".encode() in env and state != "Z":
            found.append(int(p.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_a_killed_sweep_takes_its_joblib_workers_along_and_a_restart_trains_each_once(tmp_path):
    epochs = 12
    args = [
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optim=sgd,adam",
        f"trainer.max_epochs={epochs}",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.checkpoint_interval_s=0",
        "trainer.progress=false",
        "hydra.sweep.dir=sweep",
    ]
    proc = _start(args, tmp_path)
    sweep = tmp_path / "sweep"

    def training() -> bool:
        csvs = [sweep / str(i) / "metrics.csv" for i in (0, 1)]
        return all(c.is_file() and len(c.read_text().splitlines()) >= 3 for c in csvs)

    _wait_for(training, proc)
    assert _sweep_processes(proc.pid)  # the workers are there
    proc.kill()  # SIGKILL: no handler runs in the main process
    proc.wait()
    killed = time.monotonic()
    _wait_for(lambda: not _sweep_processes(proc.pid), timeout=10)  # all gone within 10 s
    print(f"\nsweep workers gone {time.monotonic() - killed:.1f} s after SIGKILL")

    r = run_dlx(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for i in (0, 1):
        trial = sweep / str(i)
        assert read_summary(trial)["status"] == "completed"
        rows = (trial / "metrics.csv").read_text().splitlines()[1:]
        assert [int(row.split(",")[0]) for row in rows] == list(range(1, epochs + 1)), rows


# --- 3. signals everywhere -----------------------------------------------------------------------
LONG_TEST = [
    "data=synthetic",
    "data.num_train=64",
    "data.num_val=8",
    "data.num_test=20000",
    "data.image_size=16",
    "trainer.max_epochs=1",
    "trainer.eval_batch_size=1",
    "trainer.progress=false",
    "hydra.run.dir=run",
]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_in_the_test_phase_stops_it_within_a_batch(tmp_path, sig, code):
    proc = _start(["train", *LONG_TEST], tmp_path)
    csv = tmp_path / "run" / "metrics.csv"
    _wait_for(lambda: csv.is_file() and len(csv.read_text().splitlines()) == 2, proc)
    time.sleep(0.5)  # the epoch's checkpoint, then the test phase (20,000 batches)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    s = read_summary(tmp_path / "run")
    assert s["status"] == "interrupted" and s["signal"] == sig.name
    assert s["stopped_in"] == "test"
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_ctrl_c_in_validation_stops_it_within_a_batch(tmp_path):
    args = [a for a in LONG_TEST if not a.startswith("data.num_")]
    args += ["data.num_train=8", "data.num_val=40000", "data.num_test=8"]
    proc = _start(["train", *args, "trainer.limit_train_batches=1"], tmp_path)
    _wait_for(lambda: any((tmp_path / "run").glob("events.out.tfevents.*")), proc)
    time.sleep(3)  # one training step, then 40,000 validation batches
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = read_summary(tmp_path / "run")
    assert s["status"] == "interrupted" and s["stopped_in"] == "validation"
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


@pytest.fixture(scope="module")
def long_eval_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long")
    args = [a for a in LONG_TEST if not a.startswith("data.num_test")]
    r = run_dlx("train", *args, "data.num_test=8", cwd=root)
    assert r.returncode == 0, r.stderr
    cfg = root / "run" / ".hydra" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("num_test: 8", "num_test: 200000"))
    return root / "run"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_eval_stops_on_a_signal_with_its_exit_code(long_eval_run, sig, code):
    proc = _start(["eval", str(long_eval_run)], long_eval_run.parent)
    _wait_for(lambda: _handles(proc.pid, signal.SIGTERM), proc)  # the CLI is up
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    line = _one_line(err)
    assert f"dlx eval: interrupted ({sig.name})" in line


def test_a_killed_run_shows_as_dead_not_running(dlx):
    r = dlx("train", *QUIET, "hydra.run.dir=run", env={"DLX_TEST_KILL_AT_STEP": "2"})
    assert r.returncode == -signal.SIGKILL
    assert not (dlx.cwd / "run" / "summary.json").exists()
    r = dlx("runs", ".")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.lstrip("│ ").startswith("run "))
    assert "dead" in row and "running" not in row
    r = dlx("resume", "run")  # a dead run resumes as before
    assert r.returncode == 0, r.stderr
    assert read_summary(dlx.cwd / "run")["status"] == "completed"


# --- 4. bad input: one line, exit 2 ------------------------------------------------------------
TRAIN_CASES = {
    "hydra.run.dir=afile": "hydra.run.dir=afile",  # a file
    "hydra.run.dir=/sys/fs/dlx-run": "hydra.run.dir=/sys/fs/dlx-run",  # read-only filesystem
    "optim.lr=${oc.env:DLX_UNSET_VARIABLE}": "optim.lr",
    "data.val_fraction=0": "data.val_fraction",
    "optim=[sgd,adam]": "optim=[sgd,adam]",
    "optim.lr=nan": "optim.lr",
    "optim.lr=inf": "optim.lr",
    "data.batch_size=0": "data.batch_size",
    "trainer.max_epochs=-1": "trainer.max_epochs",
    "data.path=/tmp/dlx-ünïcode": "quoted",
}


@pytest.mark.parametrize(("override", "named"), list(TRAIN_CASES.items()))
def test_bad_train_input_is_one_line_naming_the_key(dlx, override, named):
    (dlx.cwd / "afile").write_text("")
    r = dlx("train", *QUIET, override)
    assert r.returncode == 2, r.stderr
    assert named in _one_line(r.stderr)


def test_split_fractions_leaving_no_batch_name_the_data_keys(dlx):
    r = dlx("train", *QUIET, "data.val_fraction=0.9", "data.batch_size=1000")
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "data.val_fraction=0.9" in line and "data.batch_size=1000" in line


def test_a_binary_file_is_not_a_text_corpus(dlx):
    (dlx.cwd / "blob.bin").write_bytes(bytes(range(256)) * 8)
    r = dlx("train", *QUIET, "data=text", "model=charlm", "data.path=blob.bin")
    assert r.returncode == 2
    assert "data.path=blob.bin" in _one_line(r.stderr)


@pytest.mark.parametrize(
    ("space", "named"),
    [
        (["optim.lr=interval(1,0.001)", "sweep=random"], "empty or inverted"),
        (["optim.lr=interval(0.1,0.1)", "sweep=random"], "empty or inverted"),
        (["optim.lr=interval(1e-3,1e-1)", "sweep=random", "hydra/sweeper/sampler=grid"], "grid"),
    ],
)
def test_a_search_range_optuna_cannot_sample_is_one_line(dlx, space, named):
    r = dlx("train", "-m", *QUIET, *space, "hydra.sweeper.n_trials=1")
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "optim.lr" in line and named in line


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("charlm")
    r = run_dlx("train", *QUIET, "data=text", "model=charlm", "hydra.run.dir=run", cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "run"


@pytest.mark.parametrize("tta", ["crops", "flip"])
def test_eval_of_a_sequence_run_refuses_tta_as_train_does(charlm_run, tta):
    r = run_dlx("eval", str(charlm_run), f"trainer.tta={tta}", cwd=charlm_run.parent)
    assert r.returncode == 2
    assert f"trainer.tta={tta}" in _one_line(r.stderr)


@pytest.mark.parametrize("text", ["", "model:\n  name: lenet\n  arch"])  # empty, truncated
@pytest.mark.parametrize("command", [["eval"], ["export", "--format", "torchscript"]])
def test_an_empty_or_truncated_saved_config_is_one_line(tmp_path, finished, command, text):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / ".hydra" / "config.yaml").write_text(text)
    r = run_dlx(command[0], str(run), *command[1:], cwd=tmp_path)
    assert r.returncode == 2
    assert ".hydra/config.yaml" in _one_line(r.stderr)


def test_report_skips_and_names_a_run_with_a_corrupt_metrics_csv(tmp_path, finished):
    shutil.copytree(finished, tmp_path / "good")
    shutil.copytree(finished, tmp_path / "bad")
    (tmp_path / "bad" / "metrics.csv").write_bytes(b"epoch,val/acc\n1,\x00\xff zz\n")
    r = run_dlx("report", ".", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "skipped damaged run bad" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "report" / "report.md").is_file()
    assert json.loads((tmp_path / "good" / "summary.json").read_text())["status"] == "completed"


def test_a_run_dir_being_trained_is_locked_and_free_once_its_process_dies(tmp_path):
    from dlx.engine import runlock
    from dlx.errors import UsageError

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dlx.engine import runlock\n"
            "with runlock.hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert runlock.alive(tmp_path) is True
    refused = pytest.raises(UsageError, match=f"being trained by pid {holder.pid} on ")
    with refused, runlock.hold(tmp_path, wait_s=0.3):
        pass
    holder.kill()  # SIGKILL: the kernel drops the lock
    holder.wait()
    assert runlock.alive(tmp_path) is False
    with runlock.hold(tmp_path):
        assert runlock.alive(tmp_path) is True
