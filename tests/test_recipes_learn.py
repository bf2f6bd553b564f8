"""Every packaged recipe (``+experiment=NAME``) learns: at a small budget each one clearly
beats chance or its task's baseline. A recipe whose init, lr or units leave it at chance
(``lenet_classic`` with sigmoid units sat at 0.096 after 30 epochs) fails here.

Budgets: the recipe as packaged, for a few epochs, on the digits at their native 8x8 (the
recipes upscale them to 32x32; 8x8 is 16x cheaper and every model builds from it), the
sequence tasks at a shorter length. Runs are in-process (no start-up per recipe). A
classification recipe stops at the first epoch whose ``val/acc`` reaches 0.4
(``stop_at_accuracy.py``, a user callback), so each costs only the epochs it needs; the big
convnets may take several and are marked ``slow``."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO

RECIPES = sorted(p.stem for p in (REPO / "src" / "dlx" / "conf" / "experiment").glob("*.yaml"))
SMALL = ["trainer.progress=false", "trainer.limit_val_batches=2", "trainer.checkpoint_interval_s=0"]
IMAGE8 = [*SMALL, "data.image_size=8"]
#: recipe -> (overrides of its budget, epochs); classification recipes must reach ACC
BUDGETS: dict[str, tuple[list[str], int]] = {
    "charlm": ([*SMALL, "trainer.limit_train_batches=20"], 1),
    "lstm_adding": ([*SMALL, "data.seq_len=10", "data.num_train=8000"], 4),
    "lstm_copy": ([*SMALL, "data.length=3", "data.delay=5", "data.num_train=4000"], 6),
    "lstm_pixels": (IMAGE8, 3),  # 64 pixels a sequence
    "autoencoder": (IMAGE8, 3),
    "denoising_autoencoder": (IMAGE8, 3),
    # MNIST-1D: 40-step sequences, small models; full epochs (logistic regression tops out
    # near 0.32 in the paper)
    "mnist1d_logreg": (SMALL, 8),
    "mnist1d_mlp": (SMALL, 4),
    "mnist1d_cnn": (SMALL, 4),
    "mnist1d_gru": (SMALL, 4),
}
NOT_CLASSIFIERS = {"charlm", "lstm_adding", "lstm_copy", "autoencoder", "denoising_autoencoder"}
#: the big convnets: several full epochs before they leave chance
SLOW = {"alexnet", "googlenet", "vgg11", "resnext50", "mobilenet_v1", "mobilenet_v2"}
SLOW |= {"shufflenet_v2"}
ACC = 0.25  # 10 classes: chance is 0.1 (test split: 270 digits, chance +- 0.018)


STOP = "trainer.callbacks=[stop_at_accuracy.StopAtAccuracy]"


def budget(name: str) -> list[str]:
    quick = [*IMAGE8, "trainer.limit_train_batches=15"]  # 45 steps
    overrides, epochs = BUDGETS.get(name, (IMAGE8, 6) if name in SLOW else (quick, 3))
    stop = [] if name in NOT_CLASSIFIERS else [STOP]
    return [f"+experiment={name}", *overrides, f"trainer.max_epochs={epochs}", *stop]


def train(overrides: list[str], tmp: Path) -> dict:
    from dlx.commands.runs import compose
    from dlx.engine.loop import run

    return run(compose(overrides), tmp, quiet=True)


def mean_image_mse(overrides: list[str]) -> float:
    """The reconstruction baseline: the MSE of predicting the training split's mean image."""
    import torch

    from dlx.commands.runs import compose
    from dlx.data import build_data

    data = build_data(compose(overrides).data, torch.device("cpu"))
    train_x = data.splits["train"][0].float() / 255
    test_x = data.splits["test"][0].float() / 255
    return float((test_x - train_x.mean(0)).square().mean())


def unigram_perplexity() -> float:
    """The language-model baseline: exp of the corpus' character entropy."""
    from dlx.data.text import TIME_MACHINE

    counts = Counter(TIME_MACHINE.read_text(encoding="utf-8"))
    total = sum(counts.values())
    return math.exp(-sum(c / total * math.log(c / total) for c in counts.values()))


def check(name: str, summary: dict, overrides: list[str]) -> None:
    m = summary["metrics"]
    assert summary["status"] in ("completed", "stopped_early"), summary
    if name.endswith("autoencoder"):
        baseline = mean_image_mse(overrides)
        assert m["test/mse"] < 0.7 * baseline, (m, baseline)
    elif name == "charlm":
        baseline = unigram_perplexity()
        assert m["test/ppl"] < 0.8 * baseline, (m, baseline)
    elif name == "lstm_adding":
        assert m["test/loss"] < 0.8 * 0.167, m  # predicting the mean: 0.167
    elif name == "lstm_copy":
        baseline = 3 * math.log(8) / (5 + 2 * 3)  # memoryless: length ln K / T
        assert m["test/loss"] < 0.9 * baseline and m["test/acc"] > 2 / 8, (m, baseline)
    else:
        assert m["test/acc"] >= ACC, m


def marks(name: str) -> list:
    return [pytest.mark.slow] if name in SLOW else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=marks(n)) for n in RECIPES])
def test_recipe_learns(name, tmp_path):
    overrides = budget(name)
    check(name, train(overrides, tmp_path), overrides)


def test_every_recipe_has_a_budget_and_a_check():
    assert set(BUDGETS) <= set(RECIPES) and set(RECIPES) >= SLOW
