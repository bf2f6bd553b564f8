"""``dlx study``: the verdict logic on scripted results, a tiny study end to end, the list."""

from __future__ import annotations

import pytest

from dlx.errors import UsageError
from dlx.study import STUDIES, find, load, names, verdict

TINY = """
name: tiny
claim: Adam beats plain SGD at lr 1e-3 within 2 epochs
source: a test
budget: 4 runs x 2 epochs of 4 batches
grid:
  optim: [sgd, adam]
seeds: [0, 1]
overrides:
  - optim.lr=0.001
  - trainer.max_epochs=2
  - trainer.limit_train_batches=4
  - trainer.limit_val_batches=2
  - trainer.progress=false
metrics: [val/acc, train/loss]
target: {metric: val/acc, value: 0.99}
claims:
  - text: Adam reaches a higher validation accuracy
    metric: val/acc
    better: optim=adam
    than: optim=sgd
  - text: SGD has the lower training loss
    metric: train/loss
    better: optim=sgd
    than: optim=adam
  - text: Adam reaches 0.99 sooner
    better: optim=adam
    than: optim=sgd
"""


@pytest.mark.parametrize(
    "a, b, higher, expected",
    [
        ((0.9, 0.01, 3), (0.5, 0.05, 3), True, "supported"),
        ((0.5, 0.05, 3), (0.9, 0.01, 3), True, "not supported"),
        ((0.9, 0.2, 3), (0.8, 0.1, 3), True, "inconclusive"),  # the spreads overlap
        ((3.0, 0.5, 3), (8.0, 1.0, 3), False, "supported"),  # epochs: fewer is better
        ((3.0, 0.0, 3), (float("nan"), float("nan"), 0), False, "inconclusive"),  # no runs
    ],
)
def test_verdicts_on_scripted_results(a, b, higher, expected):
    assert verdict(a, b, higher) == expected


def test_every_packaged_study_loads_and_names_its_claim_source_and_budget():
    assert {"optimizers", "batchnorm"} <= set(names([]))
    for name in names([]):
        study = load(find(name, []))
        assert study.claim and study.source and study.budget and study.claims
        assert find(name, []).parent == STUDIES


def test_a_bad_study_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="study nope: unknown; choose one of: batchnorm"):
        find("nope", [])
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "bad.yaml").write_text("name: bad\ngrid: {optim: [sgd]}\nclaimz: []\n")
    with pytest.raises(UsageError, match="study bad: claimz: unknown key"):
        load(find("bad", [tmp_path]))


def test_a_tiny_study_from_a_users_config_folder_end_to_end(dlx, tmp_path):
    (tmp_path / "mine" / "study").mkdir(parents=True)
    (tmp_path / "mine" / "study" / "tiny.yaml").write_text(TINY)
    r = dlx("study", "list", "-cd", str(tmp_path / "mine"))
    assert r.returncode == 0 and "tiny" in r.stdout and "optimizers" in r.stdout
    r = dlx("study", "-cd", str(tmp_path / "mine"), "tiny", "hydra.sweep.dir=st")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    verdicts = lines[-3:]
    assert lines[-4].startswith("study tiny: Adam beats plain SGD")
    assert verdicts[0].startswith(("supported", "not supported", "inconclusive"))
    assert "(val/acc: optim=adam" in verdicts[0] and "n=2/2" in verdicts[0]
    assert "(epochs to val/acc 0.99: optim=adam 3 ± 0 vs optim=sgd 3 ± 0" in verdicts[2]
    assert verdicts[2].startswith("inconclusive")  # neither reaches 0.99 in 2 epochs
    report = (tmp_path / "st" / "report" / "report.md").read_text()
    assert "## Verdicts (a test; budget: 4 runs x 2 epochs of 4 batches)" in report
    assert (tmp_path / "st" / "report" / "verdicts.txt").read_text().splitlines()[1:] == verdicts
    assert len(list((tmp_path / "st").glob("*/summary.json"))) == 4
