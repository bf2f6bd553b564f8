"""``dlx study``: the verdict logic on scripted results, a tiny study end to end, the list."""

from __future__ import annotations

import pytest

from dlx.analysis.study import STUDIES, find, load, names
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
    from dlx.analysis import search_study

    for name in names([]):
        if search_study.is_search(find(name, [])):
            study = search_study.load(find(name, []))
            assert study.claim and study.source and study.budget and study.samplers
            continue
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
    assert verdicts[0].startswith(("supported", "contradicted", "inconclusive"))
    assert "(Welch t-test, one-sided; val/acc: optim=adam" in verdicts[0]
    assert "95% CI" in verdicts[0] and "p=" in verdicts[0] and "n=2/2" in verdicts[0]
    never = "median never (never, never)"
    assert (
        f"(log-rank test, one-sided; epochs to val/acc 0.99: optim=adam {never} vs " in verdicts[2]
    )
    assert verdicts[2].startswith("inconclusive")  # neither reaches 0.99 in 2 epochs
    assert "no difference seen" in verdicts[2]
    report = (tmp_path / "st" / "report" / "report.md").read_text()
    assert "## Verdicts (a test; budget: 4 runs x 2 epochs of 4 batches)" in report
    assert "Holm's correction across the 3 claims at α = 0.05" in report
    assert f"| {never} |" in report  # the table says "never" as the verdict does
    assert (tmp_path / "st" / "report" / "verdicts.txt").read_text().splitlines()[1:] == verdicts
    assert len(list((tmp_path / "st").glob("*/summary.json"))) == 4


SAME = """
name: same
claim: logging every step or every second step trains the same net
source: a test
budget: 2 runs a seed x 2 epochs of 2 batches
grid:
  trainer.log_every_n_steps: [1, 2]
seeds: [0, 1]
overrides:
  - trainer.max_epochs=2
  - trainer.limit_train_batches=2
  - trainer.limit_val_batches=1
  - trainer.progress=false
metrics: [val/acc]
claims:
  - text: logging every step raises val accuracy (it cannot; the groups are the same runs)
    metric: val/acc
    better: trainer.log_every_n_steps=1
    than: trainer.log_every_n_steps=2
"""


def _finished(root):
    return {p.parent.name: p.stat().st_mtime_ns for p in root.glob("*/summary.json")}


def test_until_settled_adds_seeds_in_rounds_and_resumes_after_a_kill(dlx, tmp_path):
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "mine" / "study").mkdir(parents=True)
    (tmp_path / "mine" / "study" / "same.yaml").write_text(SAME)
    args = ["study", "-cd", "mine", "same", "hydra.sweep.dir=st", "study.until_settled=true"]
    args += ["study.max_seeds=4"]  # looks at 2 and 4 seeds per group (2 more a round)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlx", *args],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    st = tmp_path / "st"
    deadline = time.time() + 240
    while not (st / "r1g0-0").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):  # between rounds: the second one begun
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _finished(st)
    assert {"0", "1", "2", "3"} <= set(before)  # the first round finished before the kill
    r = dlx(*args)
    assert r.returncode == 0, r.stderr
    after = _finished(st)
    assert all(after[name] == t for name, t in before.items())  # re-used, not trained again
    assert set(after) == {"0", "1", "2", "3", "r1g0-0", "r1g0-1", "r1g1-0", "r1g1-1"}
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("inconclusive: logging every step raises val accuracy")
    assert "p=0.5" in line and "n=4/4" in line and "look 2 of 2" in line
    assert "no difference seen" in line
    report = (st / "report" / "report.md").read_text()
    assert "looks at 2, 4 seeds per group" in report and "O'Brien-Fleming" in report


def test_study_options_are_checked_in_one_line(dlx, tmp_path):
    (tmp_path / "mine" / "study").mkdir(parents=True)
    (tmp_path / "mine" / "study" / "same.yaml").write_text(SAME)
    for option, message in [
        (
            "study.max_seeds=1",
            "study.max_seeds=1: below the study's 2 seeds; allowed: an integer >= 2",
        ),
        ("study.until_settled=yes", "study.until_settled=yes: allowed: true or false"),
        ("study.nope=1", "study.nope: unknown; allowed: study.until_settled, study.max_seeds"),
    ]:
        extra = [option] if "max_seeds" not in option else ["study.until_settled=true", option]
        r = dlx("study", "-cd", "mine", "same", *extra)
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
