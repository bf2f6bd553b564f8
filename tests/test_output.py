"""Output that reads at any width and in any log: the run dir first, plain progress lines
with step counts and ETA when piped, tables that never cut a path, a Rich bar that keeps the
bar at 80 columns (through a real pseudo-terminal), train.log filled, a diverged run's line
naming its run dir, joblib trials' lines prefixed."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from conftest import QUICK

#: a run dir longer than 80 characters, as sweeps and studies make them
LONG = "outputs/sweeps/optimizers-2026-12-05_20-27-49-0a1b/a_trial_with_a_long_name/0"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def test_piped_output_is_a_plain_log(dlx):
    r = dlx("train", *QUICK, "trainer.max_epochs=2", f"hydra.run.dir={LONG}")
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = str((dlx.cwd / LONG).resolve())
    lines = r.stdout.splitlines()
    assert lines[0] == f"run dir: {run_dir}"  # first, whole
    progress = [x for x in lines if re.match(r"epoch 1/2  step \d+/3  eta \d+:\d\d:\d\d  loss ", x)]
    assert progress, r.stdout
    assert any(x.startswith("epoch 2/2  train/loss") for x in lines)
    assert "…" not in r.stdout and run_dir in r.stdout.split("run dir", 2)[-1]  # the table too
    log = (dlx.cwd / LONG / "train.log").read_text()
    assert f"run dir: {run_dir}" in log and "epoch 2/2  train/loss" in log
    assert re.search(r"completed; run dir: ", log)
    assert "[dlx.run]" not in r.stdout + r.stderr  # the log's lines are not repeated on screen


def test_tables_never_cut_a_path_when_piped(dlx):
    r = dlx("train", *QUICK, "trainer.max_epochs=1", f"hydra.run.dir={LONG}")
    assert r.returncode == 0, r.stderr[-2000:]
    runs = dlx("runs", "outputs")
    assert runs.returncode == 0, runs.stderr
    assert "…" not in runs.stdout
    assert str(Path(LONG).relative_to("outputs")) in runs.stdout


def test_a_diverged_run_names_its_run_dir(dlx):
    args = ["optim=sgd", "optim.lr=100", "data.batch_size=64", "trainer.max_epochs=3"]
    r = dlx("train", *args, "trainer.log_every_n_steps=5", "hydra.run.dir=div")
    assert r.returncode == 1, r.stderr[-2000:]
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("diverged")]
    assert line.endswith(f"run dir: {(dlx.cwd / 'div').resolve()}") or line.endswith(
        "run dir: div"
    ), line


def test_joblib_trials_lines_carry_a_trial_prefix(dlx):
    r = dlx(
        "train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=0.01,0.001",
        *QUICK, "trainer.max_epochs=1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    for n in (0, 1):
        assert re.search(rf"^\[trial {n}\] run dir: ", r.stdout, re.M), r.stdout
        assert re.search(rf"^\[trial {n}\] epoch 1/1  train/loss", r.stdout, re.M), r.stdout


def run_in_pty(args: list[str], cwd: Path, columns: int = 80) -> str:
    """``dlx ARGS`` on a pseudo-terminal ``columns`` wide; what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    for k in ("COLUMNS", "LINES", "NO_COLOR", "HYDRA_FULL_ERROR"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", *args], cwd=cwd, env=env,
        stdin=slave, stdout=slave, stderr=slave, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 0, out.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


def test_the_bar_survives_80_columns(tmp_path):
    """Long figures beside the bar: at 80 columns the bar, the step count and the ETA stay,
    the figures are shortened; the run dir prints first and the table folds, never cuts."""
    args = ["train", *QUICK, "trainer.max_epochs=2", "trainer.limit_train_batches=12"]
    text = run_in_pty([*args, f"hydra.run.dir={LONG}"], tmp_path)
    screen = [ANSI.sub("", x) for x in re.split(r"\r\n|\r|\n", text)]
    assert screen[0].startswith("run dir: ") and screen[0].endswith(LONG.rsplit("/", 1)[-1])
    bars = [x for x in screen if x.startswith("epoch 2/2")]
    assert bars and any("━" in x and re.search(r"\b12/12\b", x) for x in bars), bars
    assert all(len(x) <= 80 for x in screen[1:]), max(screen[1:], key=len)  # but the run dir
    table = "\n".join(x for x in screen if x.startswith("│"))
    assert "…" not in table and "run dir" in table


@pytest.mark.parametrize("width", [80, 60, 40])
def test_fit_drops_columns_before_the_bar(width):
    from dlx.engine.terminal import BAR_MIN, fit_widths

    keep, bar, figures = fit_widths(width, [9, 5, 7, 7], 48)
    used = 9 + 1 + bar + sum(1 + w for w, k in zip([5, 7, 7], keep, strict=True) if k)
    assert bar >= BAR_MIN and used + (1 + figures if figures else 0) <= width
    if width == 80:
        assert all(keep) and 0 < figures < 48  # every column, the figures shortened
    if width == 40:
        assert keep[0] and not keep[-1] and figures == 0  # the count stays, elapsed goes
