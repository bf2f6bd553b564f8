"""``trainer.checkpoint_interval_s``: epoch-end checkpoints at most that often, the best epoch
held in memory meanwhile, and every file right by the end (CLI runs)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conftest import QUICK, read_summary, run_dlx

SAVES = '''
import json
import torch
from dlx.callbacks import Callback

class Saves(Callback):
    """Records every checkpoint write: (name, epoch)."""
    def __init__(self):
        self.seen = []
    def on_save(self, run, name):
        self.seen.append([name, run.state.epoch])
    def close(self, run, summary):
        (run.run_dir / "saves.json").write_text(json.dumps(self.seen))

class Scramble(Callback):
    """Ruins the weights as each epoch from the 4th starts: the best epoch comes before."""
    def on_epoch_start(self, run, epoch):
        if epoch >= 3:
            with torch.no_grad():
                for p in run.model.parameters():
                    p.mul_(0).add_(torch.randn_like(p))

class Poison(Callback):
    """Makes every weight NaN as the 4th epoch starts: the run diverges there."""
    def on_epoch_start(self, run, epoch):
        if epoch == 3:
            with torch.no_grad():
                for p in run.model.parameters():
                    p.fill_(float("nan"))
'''

#: val/loss falls for three epochs, then the weights are ruined: best.pt must hold an epoch
#: that was never written when it happened, while the run goes on to epoch 5
EARLY_BEST = ["trainer.monitor=val/loss", "trainer.max_epochs=5"]


def _train(cwd: Path, name: str, *args: str, scramble: str = "Scramble", rc: int = 0) -> Path:
    (cwd / "saves.py").write_text(SAVES)
    r = run_dlx(
        "train",
        *QUICK,
        *EARLY_BEST,
        "trainer.progress=false",
        f"trainer.callbacks=[saves.Saves,saves.{scramble}]",
        f"hydra.run.dir={name}",
        *args,
        cwd=cwd,
    )
    assert r.returncode == rc, r.stderr
    return cwd / name


def _load(run_dir: Path, name: str) -> dict:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)


def test_a_long_interval_writes_once_at_the_end_with_the_held_best_epoch(tmp_path):
    held = _train(tmp_path, "held", "trainer.checkpoint_interval_s=3600")
    every = _train(tmp_path, "every", "trainer.checkpoint_interval_s=0")
    best_epoch = read_summary(held)["best_epoch"]
    assert 2 <= best_epoch <= 3  # an epoch the interval did not write when it happened
    saves = json.loads((held / "saves.json").read_text())
    # epoch 1 writes (nothing written yet), the rest hold, the last epoch writes both
    assert saves == [["best.pt", 1], ["last.pt", 1], ["best.pt", 5], ["last.pt", 5]]
    saves_every = json.loads((every / "saves.json").read_text())
    assert [s for s in saves_every if s[0] == "last.pt"] == [["last.pt", e] for e in range(1, 6)]

    # the held best is that epoch's, copied when it happened, not the weights of the end
    best, last, best_every = _load(held, "best.pt"), _load(held, "last.pt"), _load(every, "best.pt")
    assert best["state"]["epoch"] == best_epoch and last["state"]["epoch"] == 5
    for k, v in best["model"].items():
        assert torch.equal(v, best_every["model"][k]), k
    assert any(not torch.equal(v, last["model"][k]) for k, v in best["model"].items())
    # and the run's figures are the same either way: the test pass read the same best.pt
    assert read_summary(held)["metrics"] == read_summary(every)["metrics"]


def test_an_early_stop_writes_at_once(tmp_path):
    run = _train(
        tmp_path,
        "stopped",
        "trainer.checkpoint_interval_s=3600",
        "trainer.max_epochs=6",
        "regularization=early_stopping",
        "regularization.early_stopping.patience=1",
        "regularization.early_stopping.monitor=train/loss",
        "regularization.early_stopping.mode=max",
    )
    summary = read_summary(run)
    assert summary["status"] == "stopped_early", summary
    saves = json.loads((run / "saves.json").read_text())
    assert saves[-1] == ["last.pt", summary["epochs"]]
    assert _load(run, "last.pt")["state"]["epoch"] == summary["epochs"] < 6


def test_a_run_that_diverges_between_writes_still_leaves_its_best_epoch(tmp_path):
    run = _train(
        tmp_path, "diverged", "trainer.checkpoint_interval_s=3600", scramble="Poison", rc=1
    )
    summary = read_summary(run)
    assert summary["status"] == "diverged", summary
    assert 2 <= summary["best_epoch"] <= 3
    best, last = _load(run, "best.pt"), _load(run, "last.pt")
    assert best["state"]["epoch"] == summary["best_epoch"]
    assert all(torch.isfinite(v).all() for v in best["model"].values() if v.is_floating_point())
    # nothing was written after the held epoch: a resume starts there, the files agreeing
    assert last["state"]["epoch"] == last["state"]["best_epoch"] == summary["best_epoch"]


def test_a_step_checkpoint_writes_the_held_best_first(kill_and_resume):
    """last.pt never names a best epoch that best.pt does not hold (a kill right after it)."""
    run = kill_and_resume.kill(
        *QUICK,
        *EARLY_BEST,
        "trainer.progress=false",
        "trainer.checkpoint_interval_s=3600",
        "trainer.checkpoint_every_n_steps=7",  # mid-epoch 3, after epoch 2 was held
        at=7,
    )
    last, best = _load(run, "last.pt"), _load(run, "best.pt")
    assert last["state"]["step"] == 7 and last["state"]["best_epoch"] == 2
    assert best["state"]["epoch"] == 2


def test_a_negative_interval_exits_2_naming_the_key(tmp_path):
    r = run_dlx("train", *QUICK, "trainer.checkpoint_interval_s=-1", cwd=tmp_path)
    assert r.returncode == 2
    assert "trainer.checkpoint_interval_s" in r.stderr and len(r.stderr.strip().splitlines()) == 1
