"""Sweeps end to end: grid on joblib workers, random and TPE on dlx's Optuna sweeper,
failed trials, resume after SIGKILL, sweep.json / best.yaml / leaderboard / HParams."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dlx.sweep import job
from dlx.sweep import leaderboard as board
from dlx.sweep import trials as sweep
from hydra_plugins.dlx_optuna_sweeper.study import default_storage, open_storage

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
]


def read_sweep(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "sweep.json").read_text())


def values(trials: list[dict], key: str) -> list[str]:
    return [board.parse_overrides(t["overrides"])[key] for t in trials]


def hparams_sessions(sweep_dir: Path) -> dict[str, tuple[dict, str | None]]:
    """Per trial dir: the HParams session's hyperparameters and end status, read back with
    TensorBoard's own event reader and the HParams plugin's protos."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import api_pb2, metadata

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(sweep_dir))
    mux.Reload()
    out = {}
    for run, tags in mux.PluginRunToTagToContent(metadata.PLUGIN_NAME).items():
        start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        hp = {
            k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
            for k, v in start.hparams.items()
        }
        status = None
        if metadata.SESSION_END_INFO_TAG in tags:
            end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
            status = api_pb2.Status.Name(end.status)
        out[run] = (hp, status)
    return out


# --- end to end -------------------------------------------------------------------------------
def test_grid_on_two_joblib_workers_with_diverging_trials(dlx):
    """2x2 grid, two at a time; lr=1e12 diverges: recorded, the sweep goes on and exits 0."""
    r = dlx(
        "train",
        "-m",
        "optim=sgd",
        "optim.lr=0.01,1e12",
        "regularization=none,l2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweep.dir=sw",
        *TINY,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    sw = dlx.cwd / "sw"
    result = read_sweep(sw)
    trials = result["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    by_lr = {
        lr: [t["status"] for t in trials if float(values([t], "optim.lr")[0]) == lr]
        for lr in (0.01, 1e12)
    }
    assert by_lr == {0.01: ["completed", "completed"], 1e12: ["diverged", "diverged"]}
    assert 0 <= result["best"]["metrics"]["val/acc"] <= 1
    assert "optim.lr=0.01" in result["best"]["overrides"]
    # the leaderboard was printed, with the swept values as columns
    assert "optim.lr" in r.stdout and "regularization" in r.stdout and "diverged" in r.stdout
    # best.yaml: a list of overrides, and the command in a comment
    best = yaml.safe_load((sw / "best.yaml").read_text())
    assert "optim.lr=0.01" in best and not any(o.startswith("hydra") for o in best)
    assert "# " + "  dlx train optim=sgd optim.lr=0.01" in (sw / "best.yaml").read_text()
    # HParams: every trial, its own keys (l2 trials have regularization.l2.*), failed marked
    sessions = hparams_sessions(sw)
    assert sorted(sessions) == ["0", "1", "2", "3"]
    for t in trials:
        hp, status = sessions[Path(t["dir"]).name]
        assert hp["optim.lr"] == pytest.approx(float(values([t], "optim.lr")[0]))
        assert ("regularization.l2.alpha" in hp) == ("regularization=l2" in t["overrides"])
        assert status == ("STATUS_SUCCESS" if t["status"] == "completed" else "STATUS_FAILURE")
    # `dlx runs SWEEP_DIR` shows the leaderboard again
    r = dlx("runs", "sw")
    assert r.returncode == 0 and "rank" in r.stdout and "diverged" in r.stdout, r.stdout


def test_sweep_with_no_successful_trial_exits_1(dlx):
    r = dlx("train", "-m", "optim=sgd", "optim.lr=1e12", "hydra.sweep.dir=sw", *TINY)
    assert r.returncode == 1, r.stderr[-2000:]
    assert read_sweep(dlx.cwd / "sw")["best"] is None


@pytest.mark.parametrize("preset", ["random", "tpe"])
def test_optuna_presets_sample_log_uniform_lrs_and_resume(dlx, preset):
    """6 trials: distinct lrs inside the preset's interval, spread on a log scale; a re-run
    with a larger n_trials runs only the missing trials (n_trials is the total)."""
    args = [
        "train",
        "-m",
        f"sweep={preset}",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweep.dir=sw",
        *TINY,
    ]
    r = dlx(*args, "hydra.sweeper.n_trials=6")
    assert r.returncode == 0, r.stderr[-3000:]
    sw = dlx.cwd / "sw"
    assert (sw / "optuna.log").is_file()  # the study, resumable: Optuna's journal file
    trials = read_sweep(sw)["trials"]
    lrs = [float(v) for v in values(trials, "optim.lr")]
    assert len(set(lrs)) == 6 and all(1e-4 <= lr <= 1e-1 for lr in lrs)
    assert sum(lr < 1e-2 for lr in lrs) >= 2  # log-uniform: 2/3 of the draws below 1e-2
    assert all(t["status"] == "completed" for t in trials)
    if preset == "tpe":
        return
    mtimes = {
        t["dir"]: os.stat(Path(dlx.cwd, t["dir"], "summary.json")).st_mtime_ns for t in trials
    }
    r = dlx(*args, "hydra.sweeper.n_trials=7")
    assert r.returncode == 0, r.stderr[-3000:]
    trials = read_sweep(sw)["trials"]
    assert len(trials) == 7
    assert {d: os.stat(Path(dlx.cwd, d, "summary.json")).st_mtime_ns for d in mtimes} == mtimes


def test_killed_grid_sweep_resumes_without_repeating_finished_trials(dlx):
    args = [
        sys.executable,
        "-m",
        "dlx",
        "train",
        "-m",
        "optim.lr=0.001,0.002,0.003",
        "hydra.sweep.dir=sw",
        *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sw = dlx.cwd / "sw"
    proc = subprocess.Popen(
        args, cwd=dlx.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(sw.glob("*/summary.json"))) < 1 and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep ended before it was killed"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = {p.parent.name: p.stat().st_mtime_ns for p in sw.glob("*/summary.json")}
    assert 1 <= len(done) < 3 and not (sw / "sweep.json").exists()
    r = dlx(*args[3:])
    assert r.returncode == 0, r.stderr[-3000:]
    trials = read_sweep(sw)["trials"]
    assert [t["status"] for t in trials] == ["completed"] * 3
    assert {n: (sw / n / "summary.json").stat().st_mtime_ns for n in done} == done


def test_submitit_local_launcher_trials_report_to_their_study(dlx):
    """Optuna trials in submitit's own processes open the study from its storage and report
    every epoch to it (what the pruner judges)."""
    import optuna

    r = dlx(
        "train",
        "-m",
        "sweep=random",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "hydra.sweep.dir=sw",
        *TINY,
        "trainer.max_epochs=2",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    trials = read_sweep(dlx.cwd / "sw")["trials"]
    assert [t["status"] for t in trials] == ["completed", "completed"]
    storage = open_storage(default_storage(dlx.cwd / "sw"))
    study = optuna.load_study(study_name="dlx", storage=storage)
    assert [t.intermediate_values.keys() for t in study.trials] == [{1, 2}, {1, 2}]


# --- units ------------------------------------------------------------------------------------
def test_threads_divide_the_cores_among_parallel_jobs():
    assert job.threads_per_job(None, 16) is None  # basic launcher: one job at a time
    assert job.threads_per_job(1, 16) is None
    assert job.threads_per_job(4, 16) == 4
    assert job.threads_per_job(3, 16) == 5
    assert job.threads_per_job(-1, 16) == 1  # joblib: all cores, one worker each
    assert job.threads_per_job(-2, 16) == 1
    assert job.threads_per_job(32, 16) == 1


def test_parallel_jobs_get_gpus_round_robin():
    assert [job.gpu_for_job(n, 4, 4) for n in range(6)] == [0, 1, 2, 3, 0, 1]
    assert job.gpu_for_job(3, 1, 4) is None  # one GPU: share it
    assert job.gpu_for_job(3, 4, None) is None  # sequential: leave the device alone
    assert job.gpu_for_job(3, 0, 4) is None


def test_search_space_from_params_and_command_line():
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.dlx_optuna_sweeper.sweeper import consecutive, search_space

    parser = OverridesParser.create()
    params = {"optim.lr": "tag(log, interval(1e-4, 1e-1))", "optim.weight_decay": "0.1,0.2"}
    space, fixed = search_space(
        params,
        [
            "optim=choice(sgd,adam)",
            "optim.weight_decay=0",
            "data.batch_size=range(16,80,16)",
            "trainer.seed=tag(int, interval(0, 9))",
        ],
        parser,
    )
    assert space["optim.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["optim"] == CategoricalDistribution(["sgd", "adam"])
    assert space["data.batch_size"] == IntDistribution(16, 64, step=16)
    assert space["trainer.seed"] == IntDistribution(0, 9)
    assert "optim.weight_decay" not in space and fixed == ["optim.weight_decay=0"]
    assert consecutive([3, 4, 7, 8, 9, 11]) == [[3, 4], [7, 8, 9], [11]]


def test_presets_compose_without_a_sweep_key():
    from dlx.commands.runs import compose
    from dlx.trainer import ROOT_KEYS

    for preset in ("none", "random", "tpe", "asha"):
        cfg = compose([f"sweep={preset}"])
        assert tuple(cfg) == ROOT_KEYS


def test_objective_is_the_best_monitored_value_of_a_successful_run():
    ok = {"status": "completed", "best_value": 0.9, "metrics": {"val/acc": 0.8}}
    assert sweep.objective(ok) == 0.9
    assert sweep.objective({"status": "stopped_early", "metrics": {"val/acc": 0.7}}) == 0.7
    assert sweep.objective({**ok, "status": "diverged"}) is None
    assert sweep.objective({**ok, "best_value": math.nan}) is None


def test_swept_keys_and_ranking():
    trials = [
        {"number": i, "overrides": o, "objective": v, "mode": "max"}
        for i, (o, v) in enumerate(
            [
                (["optim=sgd", "optim.lr=0.1", "model=lenet"], 0.5),
                (["optim=adam", "optim.lr=0.1", "model=lenet"], None),
                (["optim=adam", "optim.lr=0.1", "model=lenet", "regularization=l2"], 0.7),
            ]
        )
    ]
    assert board.swept_keys(trials) == ["optim", "regularization"]
    assert [t["number"] for t in board.ranked(trials)] == [2, 0, 1]
    assert [t["number"] for t in board.ranked(trials, "min")] == [0, 2, 1]


def test_ctrl_c_stops_the_whole_sweep_with_exit_130(tmp_path):
    sweep_dir = tmp_path / "sw"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlx",
            "train",
            "-m",
            "optim.lr=0.001,0.002",
            "trainer.max_epochs=200",
            "trainer.progress=false",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (sweep_dir / "0" / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"hydra.sweep.dir={sweep_dir}" in err
    assert json.loads((sweep_dir / "0" / "summary.json").read_text())["status"] == "interrupted"
    assert not (sweep_dir / "1").exists()  # the next trial never started
