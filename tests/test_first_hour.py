"""A new user's first hour (issue 25): misspellings answered with 'did you mean', help that is
dlx's own, the README's own-callback example as a user runs it, MNIST's published .gz files."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import MNIST_T10K, QUICK


def one_line_error(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, expected, absent",
    [
        (["train", "trainer.max_epoch=1"], "did you mean trainer.max_epochs?", "log_every_n"),
        (["train", "model=lenett"], "did you mean lenet?", "alexnet"),
        (["train", "model.archh=x"], "did you mean model.arch?", None),
        (["train", "regularization=[dropot]"], "did you mean dropout?", "swa"),
        (["trian"], "did you mean train?", "lr-find"),
        (["study", "optimizer"], "did you mean optimizers?", None),
        (["lr-find", "--step", "3"], "did you mean --steps?", None),
        (["summary", "optim=adamm"], "did you mean adam", "rmsprop"),
    ],
)
def test_misspelt_names_get_did_you_mean(dlx, args, expected, absent):
    line = one_line_error(dlx(*args))
    assert expected in line, line
    assert absent is None or absent not in line, line


def test_far_off_names_still_list_what_is_allowed(dlx):
    line = one_line_error(dlx("train", "model=zzzz"))
    assert "choose one of: " in line and "lenet" in line and "resnet" in line


@pytest.mark.parametrize("command, heading", [("tb", "usage: dlx tb"), ("study", "dlx study list")])
def test_help_is_dlx_own(dlx, command, heading):
    r = dlx(command, "--help")
    assert r.returncode == 0, r.stderr
    assert heading in r.stdout
    assert "TensorFlow" not in r.stdout + r.stderr and "unknown" not in r.stdout + r.stderr


MYCALLBACKS = textwrap.dedent(
    """
    from dlx.callbacks import Callback

    class StopAtAccuracy(Callback):
        def __init__(self, target: float = 0.9):
            self.target = target

        def on_epoch_end(self, run, metrics):
            if metrics["val/acc"] >= self.target:
                run.request_stop("stopped_early", f"val/acc reached {self.target}")
    """
)


def dlx_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``dlx ARGS`` as the installed script runs it: ``-P`` keeps the working folder off
    ``sys.path``, as a console script does (``python -m dlx`` would put it there)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-P", "-m", "dlx", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_readme_callback_in_the_working_folder_is_found(tmp_path):
    (tmp_path / "mycallbacks.py").write_text(MYCALLBACKS)
    node = "trainer.callbacks=[{_target_:mycallbacks.StopAtAccuracy,target:0.0}]"
    r = dlx_script("train", node, *QUICK, "trainer.max_epochs=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "stopped_early" in r.stdout


def test_a_callback_that_cannot_be_imported_is_one_line(tmp_path):
    r = dlx_script("train", "trainer.callbacks=[nosuchmodule.Thing]", *QUICK, cwd=tmp_path)
    line = one_line_error(r)
    assert "trainer.callbacks[0]=nosuchmodule.Thing" in line and "cannot import" in line
    (tmp_path / "mycallbacks.py").write_text(MYCALLBACKS)
    r = dlx_script("train", "trainer.callbacks=[mycallbacks.StopAtAcuracy]", *QUICK, cwd=tmp_path)
    assert "did you mean StopAtAccuracy?" in one_line_error(r)


def test_mnist_reads_the_published_gz_files(tmp_path):
    """The files as yann.lecun.com and torchvision's mirrors publish them, still gzipped."""
    if not MNIST_T10K.is_dir():
        pytest.skip(f"genuine MNIST files not found at {MNIST_T10K}")
    import torch

    from dlx.data import build_data

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        data = (MNIST_T10K / f"t10k-{kind}-ubyte.gz").read_bytes()
        (raw / f"t10k-{kind}-ubyte.gz").write_bytes(data)
        (raw / f"train-{kind}-ubyte.gz").write_bytes(data)  # the test set stands in for train
    data = build_data({"name": "mnist", "root": str(tmp_path)}, torch.device("cpu"))
    assert data.info.sizes["test"] == 10_000 and sum(data.info.sizes.values()) == 20_000
    x, y = data.splits["test"]
    assert x.shape == (10_000, 1, 28, 28) and int(y[0]) == 7  # t10k's first digit is a 7
    plain = raw / "t10k-images-idx3-ubyte"
    assert plain.read_bytes() == gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())


def test_missing_mnist_names_the_files_and_where(dlx):
    line = one_line_error(dlx("train", "data=mnist", "data.root=nowhere", *QUICK))
    assert str(Path("nowhere") / "MNIST" / "raw") in line
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", ".gz"):
        assert name in line, line
