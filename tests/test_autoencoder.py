"""The autoencoder and the reconstruction objective: PSNR and MSE, decoder shapes at every
size, the denoising target, and a run from the CLI (summary, best.pt, the image in TensorBoard,
dlx eval / runs / report / the HParams columns on a run without accuracy)."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from conftest import only_run_dir, read_summary
from dlx.augment import build_augment
from dlx.data.base import DataInfo
from dlx.engine.inputs import Inputs
from dlx.engine.objective import Reconstruction, build_objective, psnr
from dlx.errors import UsageError
from dlx.models import build_model

CPU = torch.device("cpu")


def info(size: int = 8, channels: int = 1) -> DataInfo:
    c = channels
    return DataInfo(
        name="t", kind="image", mean=(0.5,) * c, std=(0.25,) * c, image_size=size, channels=c,
        num_classes=10,
    )  # fmt: skip


def test_psnr_of_known_pairs():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(1.0) == pytest.approx(0.0)
    assert psnr(0.0) == pytest.approx(100.0)  # a perfect reconstruction: capped, not inf
    # an image off by 0.1 everywhere: mse 0.01, 20 dB
    target = torch.rand(4, 1, 8, 8) * 0.8
    obj = build_objective(info(), "reconstruction")
    out = target + 0.1
    stats = obj.stats(out, target).tolist()
    m = obj.summarise("val", obj.loss(out, target).item(), stats, 4)
    assert m["val/mse"] == pytest.approx(0.01, rel=1e-5)
    assert m["val/psnr"] == pytest.approx(20.0, abs=1e-3)


def test_mse_is_the_mean_over_samples_of_each_images_mean_squared_error():
    obj = Reconstruction(info())
    y = torch.zeros(2, 1, 2, 2)
    out = torch.tensor([[[[1.0, 0], [0, 0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    # sample 0: 1/4; sample 1: 0.25 -> sum 0.5, over two samples 0.25
    assert obj.stats(out, y).tolist() == [0.5]
    m = obj.summarise("test", 0.25, [0.5], 2)
    assert m == {
        "test/loss": 0.25,
        "test/mse": 0.25,
        "test/psnr": pytest.approx(10 * math.log10(4)),
    }
    assert obj.monitor == "val/mse" and obj.metric_names(("val",)) == [
        "val/loss",
        "val/mse",
        "val/psnr",
    ]


@pytest.mark.parametrize("upsample", ["transposed", "unpool", "interpolate"])
@pytest.mark.parametrize("size", [8, 9, 15, 32, 224])
def test_the_decoder_restores_the_input_size_exactly(upsample, size):
    torch.manual_seed(0)
    channels = 3 if size == 224 else 1
    cfg = OmegaConf.create({"name": "autoencoder", "upsample": upsample})
    model = build_model(cfg, info(size, channels)).eval()
    assert model.task == "reconstruction"
    with torch.no_grad():
        out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, channels, size, size)
    assert out.min() >= 0 and out.max() <= 1  # a sigmoid's pixels


def test_unpool_puts_values_back_where_the_encoders_maxima_were():
    cfg = OmegaConf.create({"name": "autoencoder", "upsample": "unpool", "channels": [4]})
    model = build_model(cfg, info(8)).eval()
    stage = model.decoder[0].layer
    assert isinstance(stage.unpool, torch.nn.MaxUnpool2d)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        feats, indices = model.encoder[0](x)
        unpooled = stage.unpool(feats, indices, output_size=(8, 8))
    assert unpooled.shape == (2, 4, 8, 8)
    assert (unpooled != 0).sum(dim=(-1, -2)).max() <= 16  # one value per 2x2 window


def test_denoising_the_target_is_the_clean_image_and_only_the_input_is_noisy():
    i = info(8)
    obj = build_objective(i, "reconstruction")
    inputs = Inputs(i, CPU, False, target=obj.target)
    node = OmegaConf.create({"noise": {"p": 1.0, "std": 0.2}})
    augment = build_augment(node, i, CPU, seed=0)
    xb = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    x, target = inputs(xb, torch.zeros(4, dtype=torch.long), augment)
    clean = xb.float() / 255
    assert torch.equal(target, clean)  # the target: clean, not noisy
    seen = x * 0.25 + 0.5  # the model's input, un-normalised
    assert (seen - clean).abs().mean() > 0.05  # the input: noisy


def test_flip_moves_the_target_with_the_input_and_other_moves_are_refused():
    i = info(8)
    obj = build_objective(i, "reconstruction")
    inputs = Inputs(i, CPU, False, target=obj.target)
    node = OmegaConf.create({"flip": {"p": 1.0, "horizontal": True, "vertical": False}})
    augment = build_augment(node, i, CPU, seed=0)
    xb = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    x, target = inputs(xb, torch.zeros(4, dtype=torch.long), augment)
    assert torch.equal(target, xb.flip(-1).float() / 255)
    assert torch.allclose(x * 0.25 + 0.5, target, atol=1e-6)  # input and target alike
    for bad in ("rotate", "mixup", "autoaugment"):
        with pytest.raises(UsageError, match=f"augment={bad}: .*choose from: crop, flip"):
            obj.check_options("reconstruction", ["noise", bad], "none")
    with pytest.raises(UsageError, match=r"trainer\.tta=flip"):
        obj.check_options("reconstruction", [], "flip")


def test_autoencoder_trains_from_the_cli_and_every_reader_takes_the_run(dlx):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = dlx(
        "train",
        "model=autoencoder",
        "augment=[noise]",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = only_run_dir(dlx.cwd)
    s = read_summary(run)
    assert s["status"] == "completed" and (s["monitor"], s["mode"]) == ("val/mse", "min")
    m = s["metrics"]
    assert {"val/mse", "val/psnr", "test/mse", "test/psnr"} <= set(m) and "val/acc" not in m
    assert m["test/psnr"] == pytest.approx(10 * math.log10(1 / m["test/mse"]))
    assert s["best_value"] == m["val/mse"] and 0 < m["val/mse"] < 1
    assert (run / "checkpoints" / "best.pt").is_file()
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert "reconstruction/val" in events.Tags()["images"]
    images = events.Images("reconstruction/val")
    assert len(images) == 2  # one per epoch
    assert images[0].height > images[0].width / 8 * 2  # two rows of 8 images (plus padding)

    # dlx eval of the run: the same test figures from best.pt
    e = dlx("eval", str(run))
    assert e.returncode == 0, e.stderr[-2000:]
    assert "test/psnr" in e.stdout and f"{m['test/mse']:.4f}" in e.stdout

    # the runs table, the report and the HParams columns take a run without accuracy
    from rich.console import Console

    from dlx.analysis.hparams import metric_tags, write_experiment
    from dlx.analysis.report import run_report
    from dlx.commands.runs import print_runs

    console = Console(record=True, width=200)
    print_runs(dlx.cwd / "outputs", console=console)
    assert "completed" in console.export_text()
    report = run_report(dlx.cwd / "outputs")
    assert report.rows and (dlx.cwd / "outputs" / "report" / "report.md").is_file()
    assert "test/mse" in (dlx.cwd / "outputs" / "report" / "report.md").read_text()
    assert write_experiment(dlx.cwd / "outputs") is not None
    assert {"val/mse", "test/mse"} <= set(metric_tags(dlx.cwd / "outputs"))  # HParams columns


def test_a_geometric_augmentation_exits_2_naming_augment(dlx):
    r = dlx("train", "model=autoencoder", "augment=[rotate]", "trainer.max_epochs=1")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "augment=rotate" in lines[0] and "noise" in lines[0], r.stderr


def test_runs_sort_puts_the_lowest_mse_and_the_highest_psnr_first():
    from dlx.commands.runs import sort_runs

    runs = [{"metrics": {"val/mse": v, "val/psnr": psnr(v)}} for v in (0.05, 0.01, 0.02)]
    assert [r["metrics"]["val/mse"] for r in sort_runs(runs, "val/mse")] == [0.01, 0.02, 0.05]
    assert [r["metrics"]["val/mse"] for r in sort_runs(runs, "val/psnr")] == [0.01, 0.02, 0.05]


def test_maxout_and_init_reach_every_layer_transposed_convs_too():
    torch.manual_seed(0)
    node = {"name": "autoencoder", "activation": "maxout", "init": "normal", "init_std": 0.05}
    model = build_model(OmegaConf.create(node), info(16)).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)
    deconvs = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(deconvs) == 2
    assert deconvs[0].out_channels == 2 * 32  # k pieces per unit before the maxout
    weights = torch.cat([m.weight.flatten() for m in deconvs])
    assert weights.std().item() == pytest.approx(0.05, rel=0.1)
