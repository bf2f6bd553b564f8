"""Resume bit-for-bit: runs killed (SIGKILL) or interrupted (SIGINT, SIGTERM) at chosen points
and resumed end with exactly the metrics of an uninterrupted run; TensorBoard stays clean."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import read_summary, run_dlx, scalar_tags
from conftest import start_dlx as _start
from dlx.callbacks.csvlog import FILE, read_rows
from dlx.engine import checkpoint

#: tiny deterministic runs: 3 epochs x 3 steps, augmentation on (its generator must resume too)
RUN = [
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "trainer.progress=false",
    "augment=[flip]",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full")
    r = run_dlx("train", *RUN, "hydra.run.dir=run", cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "run"


@pytest.mark.parametrize(
    ("kill_at", "every"),
    [(3, None), (6, None), (4, 2), (8, 2)],
    # the last: epoch 2 ended within checkpoint_interval_s of epoch 1's write, held in memory
    ids=["after-epoch-1", "after-epoch-2", "mid-epoch-2", "mid-epoch-3"],
)
def test_killed_run_resumes_to_exactly_the_uninterrupted_metrics(
    kill_and_resume, uninterrupted, kill_at, every
):
    extra = [f"trainer.checkpoint_every_n_steps={every}"] if every else []
    run = kill_and_resume.kill(*RUN, *extra, at=kill_at)
    resumed, full = kill_and_resume.resume(), read_summary(uninterrupted)
    assert resumed["status"] == "completed"
    assert resumed["metrics"] == full["metrics"]  # exact, not approximate
    assert (resumed["epochs"], resumed["best_epoch"]) == (full["epochs"], full["best_epoch"])

    # TensorBoard: every tag's steps strictly increasing, the same steps as the full run
    tags, full_tags = scalar_tags(run), scalar_tags(uninterrupted)
    for tag in ("train/loss", "val/acc", "opt/lr", "test/acc"):
        steps = [s for s, _ in tags[tag]]
        assert steps == sorted(set(steps)), (tag, steps)
        assert steps == [s for s, _ in full_tags[tag]], tag
    assert tags["train/loss"] == full_tags["train/loss"]

    # metrics.csv: every epoch exactly once, the same figures as the unbroken run's
    def rows(d: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in read_rows(d / FILE)]

    assert [r["epoch"] for r in rows(run)] == ["1", "2", "3"]
    assert rows(run) == rows(uninterrupted)


def test_imagefolder_run_with_per_sample_augmentation_resumes_exactly(tmp_path, kill_and_resume):
    from test_data import write_folder

    write_folder(tmp_path / "imgs" / "train", per_class=8)
    args = [
        "data=imagefolder",
        f"data.root={tmp_path / 'imgs'}",
        "data.image_size=16",
        "data.batch_size=4",
        "data.num_workers=1",
        "augment=[flip,crop,color]",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "trainer.deterministic=true",
        "trainer.progress=false",
    ]
    full = read_summary(kill_and_resume.train(*args))
    kill_and_resume.kill(
        *args, "trainer.checkpoint_every_n_steps=2", at=2
    )  # mid-epoch 1 of 4 steps
    resumed = kill_and_resume.resume()
    assert resumed["metrics"] == full["metrics"]  # exact, not approximate
    losses = [scalar_tags(tmp_path / d)["train/loss"] for d in ("cut", "full")]
    assert losses[0] == losses[1]


def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path, uninterrupted):
    before = (uninterrupted / "summary.json").read_bytes()
    r = run_dlx("resume", str(uninterrupted), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "already finished" in r.stdout and "nothing to resume" in r.stdout
    assert (uninterrupted / "summary.json").read_bytes() == before


def _start_training(
    args: list[str], cwd: Path, timeout: float = 60
) -> tuple[subprocess.Popen, Path]:
    """Start ``dlx`` with ``args`` (which write to ``run/``); return once its first
    ``last.pt`` exists, i.e. training is under way."""
    proc = _start(args, cwd)
    last = cwd / "run" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + timeout
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    return proc, last


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_last_and_resume_completes(tmp_path, sig, code):
    # a long epoch (batch 8: ~150 steps); a checkpoint every 5 steps shows training began
    args = [
        "train",
        "trainer.max_epochs=1",
        "data.batch_size=8",
        "trainer.limit_val_batches=2",
        "trainer.checkpoint_every_n_steps=5",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    proc, last = _start_training(args, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    run = tmp_path / "run"
    s = read_summary(run)
    assert s["status"] == "interrupted" and s["signal"] == sig.name
    assert f"dlx resume {run}" in err
    assert "Traceback" not in err
    assert last.is_file()

    r = run_dlx("resume", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = read_summary(run)
    assert s["status"] == "completed" and s["epochs"] == 1
    steps = [st for st, _ in scalar_tags(run)["train/loss"]]
    assert steps == sorted(set(steps))


def test_second_ctrl_c_leaves_at_once_keeping_the_last_checkpoint(tmp_path):
    # steps of ~1 s (ResNet-50, 96 px); last.pt after every step shows training is under way
    args = [
        "train",
        "data=synthetic",
        "data.image_size=96",
        "data.batch_size=16",
        "data.num_train=160",
        "data.num_val=16",
        "data.num_test=16",
        "model=resnet",
        "model.arch=resnet50",
        "trainer.max_epochs=1",
        "trainer.checkpoint_every_n_steps=1",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    proc, last = _start_training(args, tmp_path, timeout=120)
    # Two signals of one kind that arrive during one C call (a step's convolutions) reach
    # Python as one; two kinds stay two, as two Ctrl-C's a step apart would.
    proc.send_signal(signal.SIGTERM)  # asks to stop after this step ...
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # ... and a second signal: leave now
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "checkpoint saved" not in err  # it did not wait to save the step it was in
    assert "Traceback" not in err
    s = read_summary(tmp_path / "run")
    assert s["status"] == "interrupted" and s["signal"] == "SIGINT"
    ck = checkpoint.load(last)  # the last complete checkpoint is intact
    assert 1 <= ck["state"]["step"] < 10
    assert {f.name for f in last.parent.iterdir()} <= {"last.pt", "best.pt"}  # no temp files
