"""The command line as a user meets it: help, one run end to end, eval, runs, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import QUICK, only_run_dir, read_summary, scalar_tags


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys, io, contextlib\n"
        "from dlx import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try: cli.main(['--help'])\n"
        "    except SystemExit as e: assert e.code == 0\n"
        "print(buf.getvalue())\n"
        "print('torch imported:', 'torch' in sys.modules, 'tensorboard' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    commands = (
        "train",
        "resume",
        "eval",
        "runs",
        "summary",
        "tb",
        "report",
        "study",
        "diff",
        "export",
        "lr-find",
    )
    for command in commands:
        assert f"  {command} " in out
    assert "torch imported: False False" in out


def test_train_help_lists_groups_and_options(dlx):
    r = dlx("train", "--help")
    assert r.returncode == 0
    for group in ("model", "optim", "sched", "regularization", "augment", "data", "trainer"):
        assert f"{group}:" in r.stdout
    assert "lenet" in r.stdout and "adamw" in r.stdout


def test_cfg_job_prints_composed_config(dlx):
    r = dlx("train", "--cfg", "job", "optim=sgd", "optim.lr=0.5")
    assert r.returncode == 0, r.stderr
    assert "lr: 0.5" in r.stdout and "name: sgd" in r.stdout


def test_default_run_leaves_summary_checkpoints_and_tensorboard(dlx):
    r = dlx("train", *QUICK)
    assert r.returncode == 0, r.stderr
    run = only_run_dir(dlx.cwd)
    s = read_summary(run)
    assert s["status"] == "completed"
    assert s["epochs"] == 2 and 1 <= s["best_epoch"] <= 2
    assert s["params"] == 61706  # LeNet-5 on 32x32 digits
    assert s["duration_s"] > 0
    for k in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
        assert k in s["metrics"]
        if k.endswith("acc"):
            assert 0.0 <= s["metrics"][k] <= 1.0
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (run / ".hydra" / "config.yaml").is_file()
    tags = scalar_tags(run)
    for tag in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "test/loss",
        "test/acc",
        "opt/lr",
        "opt/grad_norm",
    ):
        assert tag in tags, tag
    assert len(tags["train/loss"]) == 6  # 2 epochs x 3 steps, logged every step
    steps = [s for s, _ in tags["train/loss"]]
    assert steps == sorted(steps)


def test_hparams_session_written_into_the_runs_own_event_file(dlx):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    r = dlx("train", *QUICK, "optim.lr=0.003")
    assert r.returncode == 0, r.stderr
    run = only_run_dir(dlx.cwd)
    acc = EventAccumulator(str(run))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["optim.lr"].number_value == pytest.approx(0.003)
    assert start.hparams["model.name"].string_value == "lenet"
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == 1  # STATUS_SUCCESS
    assert metadata.EXPERIMENT_TAG not in content  # columns are inferred across runs
    # the only event files are inside the run dir itself: no stray hparams sub-runs
    assert {p.parent for p in run.rglob("events.out.tfevents.*")} == {run}


def test_eval_reuses_saved_config_and_best_checkpoint(dlx):
    assert dlx("train", *QUICK).returncode == 0
    run = only_run_dir(dlx.cwd)
    r = dlx("eval", str(run), "data.batch_size=7")
    assert r.returncode == 0, r.stderr
    test_acc = read_summary(run)["metrics"]["test/acc"]
    assert f"{test_acc:.4f}" in r.stdout  # same weights, same split: the same number


def test_runs_table_lists_runs_with_status_and_overrides(dlx):
    assert dlx("train", *QUICK, "optim.lr=0.002").returncode == 0
    r = dlx("runs", "outputs", "--sort", "test/acc")
    assert r.returncode == 0, r.stderr
    assert "completed" in r.stdout and "optim.lr=0.002" in r.stdout and "1 runs" in r.stdout


def test_run_dir_is_honoured(dlx):
    r = dlx("train", *QUICK, "hydra.run.dir=my/run")
    assert r.returncode == 0, r.stderr
    assert read_summary(dlx.cwd / "my" / "run")["status"] == "completed"


def test_diverging_run_exits_1_with_status_diverged(dlx):
    r = dlx("train", *QUICK, "optim=sgd", "optim.lr=1e12")
    assert r.returncode == 1
    s = read_summary(only_run_dir(dlx.cwd))
    assert s["status"] == "diverged"
    assert "non-finite loss" in s["error"]
    assert "Traceback" not in r.stderr


BAD = [
    (["model=foo"], "model=foo: unknown option; choose one of:"),
    (["optim=nope"], "optim=nope: unknown option"),
    (["trainer.foo=1"], "trainer.foo: unknown key; allowed keys under trainer:"),
    (["optim.lr=abc"], "optim.lr=abc: wrong type"),
    (["optim.lr=-1"], "optim.lr"),
    (["data.batch_size=0"], "data.batch_size"),
    (["optim=momentum", "optim.momentum=1.5"], "optim.momentum"),
    (["trainer.device=tpu"], "trainer.device=tpu: not allowed; choose one of: auto, cpu"),
    (["regularization=[l2,bogus]"], "regularization=bogus: unknown option"),
    (["regularization.l2.alpha=1"], "'regularization=[l2]'"),
    (["+foo=1"], "foo: unknown top-level key"),
    (["optim=sgd,adam"], "dlx train -m"),
    (["model"], "cannot parse override 'model'"),
    (["data=mnist", "data.root=/nonexistent/x"], "data.download=true"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(dlx, args, message):
    r = dlx("train", *args, *QUICK)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr + r.stdout


def test_unknown_command_exits_2(dlx):
    r = dlx("fly")
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_eval_of_a_folder_that_is_no_run_exits_2(dlx):
    r = dlx("eval", str(dlx.cwd))
    assert r.returncode == 2 and "not a dlx run dir" in r.stderr


def test_shell_completion_completes_train_overrides(dlx):
    script = dlx("train", "--shell-completion", "install=bash")
    assert script.returncode == 0 and "hydra_bash_completion" in script.stdout
    line = "dlx train optim="
    r = dlx("-sc", "query=bash", env={"COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert r.returncode == 0, r.stderr
    assert {"optim=adam", "optim=sgd", "optim=nesterov"} <= set(r.stdout.split())


def test_short_runs_still_log_the_step_tags(dlx):
    r = dlx(
        "train",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    )
    assert r.returncode == 0, r.stderr
    tags = scalar_tags(only_run_dir(dlx.cwd))
    assert {"train/loss", "opt/lr", "opt/grad_norm"} <= set(tags)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["~model"], "model: config group missing"),
        (["trainer.monitor=val/xx"], "trainer.monitor=val/xx: unknown metric"),
    ],
)
def test_missing_group_and_bad_monitor_exit_2_before_training(dlx, args, message):
    r = dlx("train", *args, *QUICK)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not list(dlx.cwd.rglob("last.pt"))  # nothing was trained


def test_eval_refuses_replacing_a_config_group(dlx):
    assert dlx("train", *QUICK).returncode == 0
    r = dlx("eval", str(only_run_dir(dlx.cwd)), "model=resnet")
    assert r.returncode == 2 and "model: a config group" in r.stderr
    assert "Traceback" not in r.stderr


def test_runs_sort_puts_the_best_first_and_rejects_unknown_keys():
    from dlx.commands.runs import sort_runs
    from dlx.errors import UsageError

    runs = [{"metrics": {"val/loss": v, "val/acc": 1 - v}} for v in (0.5, 0.1, 0.3)]
    assert [r["metrics"]["val/loss"] for r in sort_runs(runs, "val/loss")] == [0.1, 0.3, 0.5]
    assert [r["metrics"]["val/acc"] for r in sort_runs(runs, "val/acc")] == [0.9, 0.7, 0.5]
    assert [r["metrics"]["val/acc"] for r in sort_runs(runs, "-val/acc")] == [0.5, 0.7, 0.9]
    with pytest.raises(UsageError, match="--sort nosuch"):
        sort_runs(runs, "nosuch")


def test_the_command_leaves_without_teardown_but_runs_exit_handlers_and_keeps_its_code(dlx):
    """``dlx`` skips Python's module teardown (``cli.entry``); what teardown would have done
    still happens: a user's exit handler runs, logging reaches train.log, the code is kept."""
    (dlx.cwd / "atexitcb.py").write_text(
        "import atexit, pathlib\n"
        "from dlx.callbacks import Callback\n"
        "class Mark(Callback):\n"
        "    def __init__(self):\n"
        "        atexit.register(pathlib.Path('atexit-ran').write_text, 'yes')\n"
    )
    r = dlx("train", *QUICK, "trainer.callbacks=[atexitcb.Mark]")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (dlx.cwd / "atexit-ran").read_text() == "yes"
    run = only_run_dir(dlx.cwd)
    assert "completed; run dir" in (run / "train.log").read_text()
    assert read_summary(run)["status"] == "completed"
    r = dlx("train", "optim.lr=abc")
    assert r.returncode == 2 and "optim.lr" in r.stderr
