"""The runner features on real runs trained once for the whole module: provenance, ``dlx
diff``, ``dlx export``, EMA, SWA and ``trainer.save_top_k`` from the CLI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import QUICK, read_summary, run_dlx, scalar_tags

#: what run B changes against run A (the defaults)
B_OVERRIDES = [
    "optim.lr=0.01",
    "trainer.max_epochs=3",
    "regularization=[ema]",
    "regularization.ema.decay=0.5",
    "trainer.save_top_k=2",
]
#: run S: SWA over both epochs of a model with batch norm, at a constant SWA lr
S_OVERRIDES = [
    "model.norm=batch",
    "regularization=[swa]",
    "regularization.swa.swa_start=1",
    "regularization.swa.swa_lr=0.02",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, Path, Path]:
    """``(cwd, run_a, run_b)`` (and ``runs/s``, the SWA run): quick runs, started from a git
    repo with an uncommitted change (what provenance records). Trained once per test session:
    under pytest-xdist the first worker trains them, the others wait on a file lock."""
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
    for name, extra in (("a", []), ("b", B_OVERRIDES), ("s", S_OVERRIDES)):
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
    assert rows["regularization.ema.decay"] == ["—", "0.5"]
    assert rows["regularization"] == ["{}", "—"]
    assert rows["trainer.save_top_k"] == ["0", "2"]
    assert rows["trainer.max_epochs"] == ["2", "3"]
    assert "data.batch_size" not in rows  # equal keys are left out
    assert "config: 5 differences" in r.stdout
    sa, sb = read_summary(a), read_summary(b)
    for k in ("val/acc", "test/acc"):
        assert rows[k][:2] == [f"{sa['metrics'][k]:.6g}", f"{sb['metrics'][k]:.6g}"]
        assert float(rows[k][2]) == pytest.approx(sb["metrics"][k] - sa["metrics"][k], abs=1e-3)
    assert rows["status"] == ["completed", "completed", ""]
    assert rows["epochs"] == ["2", "3", "+1"]
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
    from dlx.data import build_data
    from dlx.engine import checkpoint
    from dlx.engine.inputs import Inputs
    from dlx.engine.rundirs import load_run_config
    from dlx.models import build_model

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


# --- provenance, EMA, SWA, top-k from the CLI --------------------------------------------------
def test_provenance_of_a_run_started_in_a_dirty_repo(runs):
    cwd, a, _ = runs
    record = json.loads((a / "provenance.json").read_text())
    head = subprocess.run(
        ["git", "-C", str(cwd), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert record["git"]["commit"] == head and record["git"]["dirty"] is True
    assert "+second" in (a / "git.diff").read_text()
    assert record["command"].startswith("dlx train trainer.max_epochs=2")
    assert record["versions"]["torch"] == torch.__version__
    assert record["cwd"] == str(cwd)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(a))
    acc.Reload()
    assert "provenance/text_summary" in acc.Tags()["tensors"]


def built(run_dir: Path, weights: dict):
    """The run's model with ``weights``, its data and inputs (on the CPU)."""
    from dlx.data import build_data
    from dlx.engine.inputs import Inputs
    from dlx.engine.rundirs import load_run_config
    from dlx.models import build_model

    cfg = load_run_config(run_dir)
    data = build_data(cfg.data, torch.device("cpu"))
    model = build_model(cfg.model, data.info)
    model.load_state_dict(weights)
    return model.eval(), data, Inputs(data.info, torch.device("cpu"), False)


def figures(run_dir: Path, weights: dict, split: str, limit: int | None = None) -> dict:
    """``weights``' loss and accuracy on ``split``, in the run's evaluation batches (4x the
    training batch: ``trainer.eval_batch_size`` unset) so ``limit`` covers the same samples."""
    from contextlib import nullcontext

    from dlx.engine.evaluate import evaluate
    from dlx.engine.objective import Objective

    model, data, inputs = built(run_dir, weights)
    batch = 4 * data.batch_size
    return evaluate(
        model, data, split, inputs, Objective(data.info), nullcontext, limit, "none", None, batch
    )


def test_ema_is_what_validation_and_the_test_measure(runs):
    from dlx.engine import checkpoint

    _, _, b = runs
    summary = read_summary(b)
    last = checkpoint.load(b / "checkpoints" / "last.pt")
    ema = last["ema"]
    assert ema["updates"] == 3 * 3  # every optimizer step: 3 epochs of 3 batches
    assert any(not torch.equal(ema["module"][k], v) for k, v in last["model"].items())
    val = figures(b, ema["module"], "val", limit=2)  # trainer.limit_val_batches=2
    for k, v in val.items():
        assert summary["last"][k] == pytest.approx(v, abs=1e-6)
    best = checkpoint.load(b / "checkpoints" / "best.pt")
    test = figures(b, best["model"], "test")
    for k, v in test.items():
        assert summary["metrics"][k] == pytest.approx(v, abs=1e-6)


def test_save_top_k_keeps_the_k_best_epochs(runs):
    from dlx.engine import checkpoint

    _, _, b = runs
    per_epoch = [v for _, v in scalar_tags(b)["val/acc"]]
    assert len(per_epoch) == 3
    ranked = sorted(range(1, 4), key=lambda e: (-per_epoch[e - 1], e))  # ties: earlier stays
    files = sorted(p.name for p in (b / "checkpoints").glob("epoch=*.pt"))
    assert sorted(int(re.match(r"epoch=(\d+)-val_acc=", f).group(1)) for f in files) == sorted(
        ranked[:2]
    )
    for f in files:
        epoch, value = re.match(r"epoch=(\d+)-val_acc=([0-9.]+)\.pt", f).groups()
        assert float(value) == pytest.approx(per_epoch[int(epoch) - 1], abs=1e-4)
    kept = checkpoint.load(b / "checkpoints" / "last.pt")["top_k"]["kept"]
    assert sorted(e["file"] for e in kept) == files
    best = checkpoint.load(b / "checkpoints" / "best.pt")["model"]
    top = next(f for f in files if f.startswith(f"epoch={ranked[0]}-"))
    top_model = checkpoint.load(b / "checkpoints" / top)["model"]
    assert all(torch.equal(best[k], v) for k, v in top_model.items())


def test_swa_averages_recomputes_bn_and_is_tested(runs):
    from torch.optim.swa_utils import update_bn

    from dlx.engine import checkpoint

    cwd, _, _ = runs
    s = cwd / "runs" / "s"
    summary = read_summary(s)
    last = checkpoint.load(s / "checkpoints" / "last.pt")
    best = checkpoint.load(s / "checkpoints" / "best.pt")["model"]
    assert int(last["swa"]["n_averaged"]) == 2  # epochs 1 and 2
    model, data, inputs = built(s, best)
    for name, p in model.named_parameters():  # best.pt holds the average's weights
        assert torch.equal(p, last["swa"][f"module.{name}"]), name
    # and BN statistics recomputed from scratch over the 3 training batches
    fresh = built(s, {**best, **{k: v * 0 for k, v in best.items() if "running" in k}})[0]
    batches = [inputs(xb, yb)[0] for xb, yb in data.batches("train", drop_last=True)][:3]
    update_bn(batches, fresh)
    for name, buf in fresh.named_buffers():
        if "running" in name:
            assert torch.allclose(buf, best[name], atol=1e-5), name
    assert any(not torch.allclose(best[k], last["model"][k]) for k in best if "running_mean" in k)
    test = figures(s, best, "test")
    for k, v in test.items():
        assert summary["metrics"][k] == pytest.approx(v, abs=1e-6)
    assert summary["best_epoch"] == 2
    lrs = [v for _, v in scalar_tags(s)["opt/lr"]]
    assert len(lrs) == 6 and all(v == pytest.approx(0.02) for v in lrs)  # every step
    assert "swa/val/acc" in scalar_tags(s)


def test_swa_start_past_the_last_epoch_is_a_usage_error(dlx):
    r = dlx("train", *QUICK, "regularization=[swa]", "regularization.swa.swa_start=3")
    assert r.returncode == 2, r.stderr
    assert "regularization.swa.swa_start=3: after the last epoch; allowed: 1..2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_killed_run_with_ema_swa_top_k_resumes_exactly(tmp_path: Path, kill_and_resume):
    """EMA, SWA and the top-k list live in last.pt: a run killed mid-epoch and resumed ends
    with the uninterrupted run's figures and files."""
    args = [
        *QUICK,
        "trainer.max_epochs=3",
        "trainer.deterministic=true",
        "trainer.checkpoint_every_n_steps=2",
        "model.norm=batch",
        "regularization=[ema,swa]",
        "regularization.ema.decay=0.7",
        "regularization.swa.swa_start=2",
        "trainer.save_top_k=2",
    ]
    full = read_summary(kill_and_resume.train(*args))
    kill_and_resume.kill(*args, at=4)  # SIGKILL mid-epoch 2, after last.pt at step 4
    cut = kill_and_resume.resume()
    assert cut["metrics"] == full["metrics"] and cut["last"] == full["last"]
    names = lambda d: sorted(p.name for p in (tmp_path / d / "checkpoints").iterdir())  # noqa: E731
    assert names("cut") == names("full")
    resumes = json.loads((tmp_path / "cut" / "provenance.json").read_text())["resumes"]
    assert [e["command"] for e in resumes] == ["dlx resume cut"]
