"""Every recipe in experiments/ (one per model family) trains end to end from the CLI."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, only_run_dir, read_summary, scalar_tags

EXPERIMENTS = sorted(p.stem for p in (REPO / "src" / "dlx" / "conf" / "experiment").glob("*.yaml"))
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
]


def test_every_model_family_has_a_recipe():
    families = {"lenet", "alexnet", "vgg", "nin", "resnet", "lstm"}
    text = " ".join((REPO / "experiments" / f"{e}.yaml").read_text() for e in EXPERIMENTS)
    assert families <= set(re.findall(r"override /model: (\w+)", text))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_trains(dlx, name):
    r = dlx("train", f"+experiment={name}", *TINY)
    assert r.returncode == 0, r.stderr
    run = only_run_dir(dlx.cwd)
    s = read_summary(run)
    assert s["status"] == "completed" and s["epochs"] == 1 and s["params"] > 0
    assert (run / "checkpoints" / "best.pt").is_file()
    tags = scalar_tags(run)
    assert {"train/loss", "val/acc", "test/acc", "opt/lr"} <= set(tags)


def test_summary_ends_with_total_params_matching_the_run(dlx):
    r = dlx("summary", "model=resnet")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"Total params: ([\d,]+)", last)
    assert m, last
    assert int(m.group(1).replace(",", "")) == 269_434  # ResNet-20, 1-channel digits
    assert "MACs" in r.stdout
