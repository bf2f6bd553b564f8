"""Every recipe in experiments/ (one per model family) trains end to end from the CLI."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, read_summary, scalar_tags

EXPERIMENTS = sorted(p.stem for p in (REPO / "src" / "dlx" / "conf" / "experiment").glob("*.yaml"))
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
]


def test_every_model_family_has_a_recipe():
    from dlx.models import MODELS

    families = set(MODELS.names())
    text = " ".join((REPO / "experiments" / f"{e}.yaml").read_text() for e in EXPERIMENTS)
    assert families <= set(re.findall(r"override /model: (\w+)", text))


@pytest.mark.parametrize("half", [0, 1])
def test_experiments_train(dlx, half):
    """Half the recipes per test (one for each xdist worker), as one grid sweep over
    ``+experiment``: the trials run in one process, so there is one start-up per half."""
    names = EXPERIMENTS[half::2]
    r = dlx("train", "-m", f"+experiment={','.join(names)}", *TINY, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = (dlx.cwd / "outputs" / "sweeps").iterdir()
    trials = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert sorted(t["overrides"][0] for t in trials) == [f"+experiment={n}" for n in names]
    for trial in trials:
        run = dlx.cwd / trial["dir"]
        s = read_summary(run)
        assert s["status"] == "completed" and s["epochs"] == 1 and s["params"] > 0, trial
        assert (run / "checkpoints" / "best.pt").is_file()
        tags = scalar_tags(run)
        monitor = s["monitor"]  # val/acc, or the task's own (val/mse of an autoencoder)
        test = monitor.replace("val/", "test/")
        assert {"train/loss", monitor, test, "opt/lr"} <= set(tags), trial


def test_summary_ends_with_total_params_matching_the_run(dlx):
    r = dlx("summary", "model=resnet")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"Total params: ([\d,]+)", last)
    assert m, last
    assert int(m.group(1).replace(",", "")) == 269_434  # ResNet-20, 1-channel digits
    assert "MACs" in r.stdout
