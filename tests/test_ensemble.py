"""Ensembles of runs (``dlx eval RUN_DIR RUN_DIR…``) and multi-crop test-time augmentation
(``trainer.tta=crops|flip_crops``)."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from dlx.augment.tta import TTA, five_crops, tta_forward
from dlx.commands.ensemble import Ensemble
from dlx.data.base import DataInfo
from dlx.engine.objective import build_objective
from dlx.models import build_model

INFO = DataInfo(name="t", kind="image", num_classes=10, channels=1, image_size=16)


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return build_model(OmegaConf.create({"name": "lenet"}), INFO).eval()


@pytest.mark.parametrize("mode", ["crops", "flip_crops"])
def test_multi_crop_tta_of_a_constant_image_equals_no_tta(mode):
    model = lenet()
    x = torch.full((2, 1, 16, 16), 0.3)
    x[1] = -0.7
    with torch.no_grad():
        plain = model(x)
        averaged = tta_forward(model, x, mode)
    assert torch.allclose(averaged, plain, atol=1e-5)
    # a picture that is not constant: the views differ, and so does their mean
    y = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(tta_forward(model, y, mode), model(y), atol=1e-4)


def test_five_crops_are_the_corners_and_the_centre_at_the_input_size():
    x = torch.zeros(1, 1, 16, 16)  # crops of 14x14: the centre one starts at (1, 1)
    x[..., 0, 0] = 1.0  # a bright top-left pixel: outside every crop but the top-left one
    views = five_crops(x)
    assert len(views) == 5 and all(v.shape == x.shape for v in views)
    assert views[0].max() > 0.5  # top-left
    assert [float(v.max()) for v in views[1:]] == [0.0, 0.0, 0.0, 0.0]
    assert {"none", "flip", "crops", "flip_crops"} <= set(TTA)


def test_flip_crops_average_ten_views():
    calls = []

    def model(v: torch.Tensor) -> torch.Tensor:
        calls.append(v)
        return v.mean((1, 2, 3))[:, None]

    tta_forward(model, torch.rand(3, 1, 8, 8), "flip_crops")  # type: ignore[arg-type]
    assert len(calls) == 10
    assert torch.equal(calls[1], calls[0].flip(-1))


def test_an_ensemble_averages_the_members_probabilities():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    x = torch.randn(5, 4)
    objective = build_objective(INFO, "classification")
    with torch.no_grad():
        out = Ensemble([a, b], objective)(x)
        expected = (a(x).softmax(-1) + b(x).softmax(-1)) / 2
    assert torch.allclose(out.softmax(-1), expected, atol=1e-6)
    assert torch.allclose(out.exp().sum(-1), torch.ones(5), atol=1e-6)  # log-probabilities
    # regression and reconstruction: the mean output
    mean = build_objective(INFO, "reconstruction").combine([torch.zeros(2, 3), torch.ones(2, 3)])
    assert torch.equal(mean, torch.full((2, 3), 0.5))


def rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows: member -> its metric cells (4-decimal numbers), in order."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if len(cells) >= 3 and re.fullmatch(r"-?\d+\.\d{4}", cells[-1]):
            out[cells[0]] = cells[2:]
    return out


def test_an_ensemble_of_one_checkpoint_twice_equals_it_and_other_data_exits_2(dlx):
    r = dlx(
        "train",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "hydra.run.dir=a",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a = dlx.cwd / "a"
    shutil.copytree(a, dlx.cwd / "b")
    e = dlx("eval", "a", "b", "trainer.tta=flip_crops")
    assert e.returncode == 0, e.stderr[-2000:]
    table = rows(e.stdout)
    assert list(table) == ["a", "b", "ensemble"], e.stdout
    assert table["a"] == table["b"] == table["ensemble"], e.stdout
    acc = float(table["ensemble"][1])
    assert 0 <= acc <= 1 and float(table["ensemble"][0]) > 0

    # a member carved from other data: one line, exit 2, naming the run and the key
    cfg = (dlx.cwd / "b" / ".hydra" / "config.yaml").read_text()
    changed = cfg.replace("val_fraction: 0.1", "val_fraction: 0.2")
    assert changed != cfg
    (dlx.cwd / "b" / ".hydra" / "config.yaml").write_text(changed)
    bad = dlx("eval", "a", "b")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "RUN_DIR=b" in lines[0] and "data.val_fraction=0.2" in lines[0]
