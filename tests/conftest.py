"""Shared fixtures: run the real CLI in a subprocess, read what a run leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MNIST_T10K = SHARED / "data" / "mnist-t10k"


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread in the test processes, as ``run_dlx`` gives its subprocesses: with
    ``-n 2`` on two cores, two workers of two spinning OpenMP threads each would fight."""
    import torch

    torch.set_num_threads(1)


#: quick-run overrides: a couple of tiny epochs
QUICK = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
]


def dlx_env(env: dict | None = None) -> dict:
    """The environment a test's ``dlx`` runs in: one intra-op thread, unbuffered output."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return full_env


def run_dlx(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """``dlx ARGS`` as a user types it, in ``cwd``; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "dlx", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dlx_env(env),
    )


def start_dlx(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``dlx ARGS`` started in ``cwd`` (to signal or kill it), its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "dlx", *args],
        cwd=cwd,
        env=dlx_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line(stderr: str) -> str:
    """The one line a refused or stopped command printed (never a traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def only_run_dir(root: Path) -> Path:
    """The single run dir under ``root/outputs/runs``."""
    dirs = sorted((root / "outputs" / "runs").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def scalar_tags(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the run's event files, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.fixture
def dlx(tmp_path: Path):
    """Run ``dlx`` in a fresh folder: ``dlx("train", "model=lenet")``."""

    def _run(*args: str, **kw):
        return run_dlx(*args, cwd=kw.pop("cwd", tmp_path), **kw)

    _run.cwd = tmp_path
    return _run


class KillAndResume:
    """The kill-and-resume scenario, in one folder: ``train`` a run uninterrupted, ``kill`` one
    (the ``DLX_TEST_KILL_AT_STEP`` hook SIGKILLs it right after step N's checkpoint: no
    summary, only checkpoints), ``resume`` it as a user would (``dlx resume NAME``)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def train(self, *args: str, name: str = "full") -> Path:
        r = run_dlx("train", *args, f"hydra.run.dir={name}", cwd=self.cwd)
        assert r.returncode == 0, r.stderr
        return self.cwd / name

    def kill(self, *args: str, at: int, name: str = "cut") -> Path:
        env = {"DLX_TEST_KILL_AT_STEP": str(at)}
        r = run_dlx("train", *args, f"hydra.run.dir={name}", cwd=self.cwd, env=env)
        assert r.returncode == -signal.SIGKILL, r.stderr
        assert not (self.cwd / name / "summary.json").exists()  # killed: checkpoints alone
        return self.cwd / name

    def resume(self, name: str = "cut") -> dict:
        """``dlx resume NAME``; the resumed run's summary."""
        r = run_dlx("resume", name, cwd=self.cwd)
        assert r.returncode == 0, r.stderr
        return read_summary(self.cwd / name)


@pytest.fixture
def kill_and_resume(tmp_path: Path) -> KillAndResume:
    """Train, SIGKILL and resume runs in ``tmp_path`` (``KillAndResume``)."""
    return KillAndResume(tmp_path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A run dir of a quick finished run, shared by a module's tests (which copy it before
    damaging it)."""
    root = tmp_path_factory.mktemp("finished")
    r = run_dlx("train", *QUICK, "trainer.progress=false", "hydra.run.dir=run", cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "run"
