"""``dlx diff`` and ``dlx export`` on two real runs trained once for the whole module."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import QUICK, read_summary, run_dlx

#: what run B changes against run A (the defaults)
B_OVERRIDES = ["optim.lr=0.01", "regularization=[l2]", "regularization.l2.alpha=0.001"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, Path, Path]:
    """``(cwd, run_a, run_b)``: two quick runs, started from a git repo with an uncommitted
    change (what provenance records). Trained once per test session: under pytest-xdist the
    first worker trains them, the others wait on a file lock and read them."""
    from filelock import FileLock

    if worker_id == "master":
        return train_runs(tmp_path_factory.mktemp("project"))
    shared = tmp_path_factory.getbasetemp().parent / "runner-features"
    with FileLock(str(shared) + ".lock"):
        if (shared / "done").is_file():
            return shared, shared / "runs" / "a", shared / "runs" / "b"
        shared.mkdir()
        result = train_runs(shared)
        (shared / "done").touch()
        return result


def train_runs(cwd: Path) -> tuple[Path, Path, Path]:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(cwd)]
    subprocess.run([*git, "init", "-q"], check=True)
    (cwd / "notes.md").write_text("first\n")
    subprocess.run([*git, "add", "notes.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    (cwd / "notes.md").write_text("second\n")
    dirs = []
    for name, extra in (("a", []), ("b", B_OVERRIDES)):
        r = run_dlx("train", *QUICK, *extra, f"hydra.run.dir=runs/{name}", cwd=cwd)
        assert r.returncode == 0, r.stderr
        dirs.append(cwd / "runs" / name)
    return cwd, dirs[0], dirs[1]


def test_diff_shows_the_known_differences(runs):
    cwd, a, b = runs
    r = run_dlx("diff", "runs/a", "runs/b", cwd=cwd)
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells:
            rows[cells[0]] = cells[1:]
    assert rows["optim.lr"] == ["0.001", "0.01"]
    assert rows["regularization.l2.alpha"] == ["—", "0.001"]
    assert rows["regularization"] == ["{}", "—"]
    assert "data.batch_size" not in rows  # equal keys are left out
    assert "config: 4 differences" in r.stdout
    sa, sb = read_summary(a), read_summary(b)
    for k in ("val/acc", "test/acc"):
        assert rows[k][:2] == [f"{sa['metrics'][k]:.6g}", f"{sb['metrics'][k]:.6g}"]
        assert float(rows[k][2]) == pytest.approx(sb["metrics"][k] - sa["metrics"][k], abs=1e-3)
    assert rows["status"] == ["completed", "completed", ""]
    assert ("last:val/acc" in rows) == ("last" in sb)
    assert f"B: runs/b  [completed]  {' '.join([*QUICK, *B_OVERRIDES])}" in r.stdout


def test_diff_bad_usage(runs):
    cwd, _, _ = runs
    for args, key in [(["runs/a"], "usage: dlx diff"), (["runs/a", "nowhere"], "RUN_B=nowhere")]:
        r = run_dlx("diff", *args, cwd=cwd)
        assert r.returncode == 2 and key in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def best_model(run_dir: Path):
    """The PyTorch model of ``best.pt`` and one real test batch, built as dlx builds them."""
    from dlx import checkpoint
    from dlx.data import build_data
    from dlx.inputs import Inputs
    from dlx.models import build_model
    from dlx.runs import load_run_config

    cfg = load_run_config(run_dir)
    data = build_data(cfg.data, torch.device("cpu"))
    model = build_model(cfg.model, data.info)
    model.load_state_dict(checkpoint.load(run_dir / "checkpoints" / "best.pt")["model"])
    batches = data.batches("test")
    next(batches)
    x, _ = Inputs(data.info, torch.device("cpu"), False)(*next(batches))  # not the CLI's batch
    return model.eval(), x


def check_line(stdout: str) -> tuple[float, float]:
    m = re.search(r"max \|exported - pytorch\| = (\S+) \(tolerance (\S+)\): ok", stdout)
    assert m, stdout
    return float(m.group(1)), float(m.group(2))


def test_export_torchscript_round_trip(runs):
    cwd, a, _ = runs
    r = run_dlx("export", "runs/a", "--format", "torchscript", cwd=cwd)
    assert r.returncode == 0, r.stderr
    diff, tol = check_line(r.stdout)
    assert diff <= tol <= 1e-3
    path = a / "export" / "model.torchscript.pt"
    extra = {"dlx.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["dlx.json"])["dlx.model"] == "lenet"
    model, x = best_model(a)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
        assert loaded(x[:3]).shape == (3, 10)


def test_export_onnx_round_trip(runs, tmp_path: Path):
    import onnx
    import onnxruntime as ort

    cwd, _, b = runs
    out = tmp_path / "net.onnx"
    r = run_dlx("export", "runs/b", "--format=onnx", "--out", str(out), cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert "onnxruntime" in r.stdout and str(out) in r.stdout
    check_line(r.stdout)
    onnx.checker.check_model(str(out))
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["dlx.input_shape"]) == ["N", 1, 32, 32]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model, x = best_model(b)
    with torch.inference_mode():
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert torch.allclose(got, model(x), atol=1e-4)
        (five,) = session.run(None, {"input": x[:5].numpy()})
        assert five.shape == (5, 10)


def test_export_bad_usage(runs):
    cwd, _, _ = runs
    for args, key in [
        (["runs/a"], "--format: required"),
        (["runs/a", "--format", "tflite"], "--format=tflite: choose one of: torchscript, onnx"),
        (["nowhere", "--format", "onnx"], "RUN_DIR=nowhere"),
        (["runs/a", "--format", "onnx", "--bogus"], "--bogus"),
    ]:
        r = run_dlx("export", *args, cwd=cwd)
        assert r.returncode == 2 and key in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1


def test_help_lists_the_new_commands_without_importing_torch():
    code = (
        "import sys, io, contextlib\n"
        "from dlx import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try: cli.main(['--help'])\n"
        "    except SystemExit as e: assert e.code == 0\n"
        "print(buf.getvalue())\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    for command in ("diff", "export", "lr-find"):
        assert f"  {command} " in out
    assert "torch imported: False" in out
