"""The task is a choice: which objective a run gets, and the monitor it follows, known from
the config alone (a sweep's direction) and the same as the built run's."""

from __future__ import annotations

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from conftest import QUICK
from dlx.data import DATASETS, build_data
from dlx.engine.objective import OBJECTIVES, planned_monitor
from dlx.models import MODELS


@pytest.mark.parametrize(
    "overrides, monitor",
    [
        ([], "val/acc"),
        (["model=autoencoder"], "val/mse"),
        (["model=charlm", "data=text"], "val/ppl"),
        (["model=lstm", "data=adding"], "val/acc"),
        (["model=autoencoder", "trainer.monitor=val/psnr"], "val/psnr"),  # said: kept
    ],
)
def test_the_planned_monitor_follows_the_task_unless_set(overrides, monitor):
    from dlx.commands.runs import compose

    assert planned_monitor(compose(overrides)) == monitor


@pytest.mark.parametrize("name", ["digits", "adding", "copy", "text", "synthetic"])
def test_each_datasets_registered_task_is_the_one_its_data_has(name):
    entry = DATASETS.get(name)
    data = build_data(OmegaConf.create({"name": name}), torch.device("cpu"))
    assert data.info.task == (entry.task or "classification")
    assert data.info.task in OBJECTIVES


def test_a_models_registered_task_is_carried_by_the_built_model():
    from dlx.models import build_model

    info = build_data(OmegaConf.create({"name": "digits"}), torch.device("cpu")).info
    model = build_model(OmegaConf.create({"name": "autoencoder"}), info)
    assert MODELS.get("autoencoder").task == model.task == "reconstruction"
    assert not hasattr(build_model(OmegaConf.create({"name": "lenet"}), info), "task")


def test_a_tpe_sweep_of_an_autoencoder_minimises_its_mse(dlx):
    r = dlx(
        "train",
        "-m",
        "sweep=tpe",
        "model=autoencoder",
        "hydra.sweeper.n_trials=1",
        "hydra.sweep.dir=sw",
        *QUICK,
        "trainer.max_epochs=1",
    )
    assert r.returncode == 0, r.stderr
    saved = yaml.safe_load((dlx.cwd / "sw" / "multirun.yaml").read_text())
    assert saved["hydra"]["sweeper"]["direction"] == "minimize"
