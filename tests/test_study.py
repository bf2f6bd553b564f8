"""``dlx study``: the verdict logic on scripted results, a tiny study end to end, the list."""

from __future__ import annotations

import pytest

from dlx.analysis.study import STUDIES, find, load, names, verdict
from dlx.errors import UsageError

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
        ((0.9, 0.0, 1), (0.5, 0.0, 1), True, "inconclusive"),  # one run each: no spread
    ],
)
def test_verdicts_on_scripted_results(a, b, higher, expected):
    assert verdict(a, b, higher) == expected


def test_a_factor_asks_for_that_ratio_and_a_baseline_is_a_number():
    small, big = (0.001, 0.0005, 3), (0.1, 0.02, 3)
    assert verdict(small, big, False, factor=10) == "supported"  # 100x smaller
    assert verdict((0.02, 0.005, 3), big, False, factor=10) == "not supported"  # only 5x
    assert verdict((0.05, 0.01, 3), (0.167, 0.0, 1), False, baseline=True) == "supported"
    assert verdict((0.17, 0.001, 3), (0.167, 0.0, 1), False, baseline=True) == "not supported"


def _record(tmp_path, name, status, best, last, rows=()):
    from dlx.analysis.report import RunRecord

    summary = {"status": status, "metrics": best, "last": last}
    return RunRecord(tmp_path / name, {}, status, summary, list(rows), {})


def test_claim_metrics_differences_ratios_last_epoch_and_finished(tmp_path):
    from dlx.analysis.study import Study, run_value

    study = Study("s", "c", "src", "b", {"x": [1]})
    r = _record(
        tmp_path,
        "a",
        "completed",
        {"train/acc": 0.9, "val/acc": 0.8},
        {"train/acc": 1.0, "val/acc": 0.7, "grads/norm/fc1": 0.002, "grads/norm/out": 0.5},
    )
    assert run_value(r, "train/acc - val/acc", study) == pytest.approx(0.1)  # the best epoch's
    assert run_value(r, "last:train/acc - last:val/acc", study) == pytest.approx(0.3)
    assert run_value(r, "last:grads/norm/fc1 / last:grads/norm/out", study) == 0.002 / 0.5
    assert run_value(r, "finished", study) == 1.0
    assert run_value(_record(tmp_path, "b", "diverged", {}, {}), "finished", study) == 0.0
    assert run_value(_record(tmp_path, "c", "diverged", {}, {}), "val/acc", study) is None


def test_a_claim_on_a_difference_must_say_which_way_is_better(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "gap.yaml").write_text(
        "name: gap\nclaim: c\nsource: s\nbudget: b\ngrid: {optim: [sgd, adam]}\n"
        "claims: [{text: t, better: optim=adam, than: optim=sgd, metric: train/acc - val/acc}]\n"
    )
    with pytest.raises(UsageError, match="is a difference or ratio; say higher_is_better"):
        load(find("gap", [tmp_path]))


def test_grid_values_are_written_the_way_hydra_reads_them():
    from dlx.analysis.study import Study, sweep_args

    study = Study("s", "c", "src", "b", {"model.shortcut": [None, "A"], "x.flag": [True, False]})
    args = sweep_args(study, [], tmp := __import__("pathlib").Path("out"))
    assert "model.shortcut=null,A" in args and "x.flag=true,false" in args
    assert f"hydra.sweep.dir={tmp}" in args


def test_every_packaged_study_loads_and_names_its_claim_source_and_budget():
    assert len(names([])) >= 7
    assert {"optimizers", "batchnorm", "regularization", "depth", "clipping"} <= set(names([]))
    for name in names([]):
        study = load(find(name, []))
        assert study.claim and study.source and study.budget and study.claims
        assert find(name, []).parent == STUDIES


def test_a_bad_study_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="study nope: unknown; choose one of: augmentation, batch"):
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
