"""Sweeps that scale out: several `dlx train -m` workers on one Optuna study (a journal file,
a real PostgreSQL server), a SIGKILLed worker's trial failed and taken over, the direction
following the metric, the pruner configs."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import read_summary, scalar_tags
from hydra_plugins.dlx_optuna_sweeper.study import default_storage, open_storage

TINY = [
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
]


def dlx_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "dlx", *args]


def env() -> dict[str, str]:
    out = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out.pop("HYDRA_FULL_ERROR", None)
    return out


def start_workers(cwd: Path, n: int, args: list[str]) -> list[subprocess.Popen]:
    """``n`` concurrent `dlx train -m ARGS` processes, worker ``i`` in sweep dir ``w<i>``."""
    return [
        subprocess.Popen(
            dlx_argv("train", "-m", *args, f"hydra.sweep.dir=w{i}"),
            cwd=cwd,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def load_study(url: str, name: str):
    import optuna

    from hydra_plugins.dlx_optuna_sweeper.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def check_shared_study(cwd: Path, url: str, name: str, n_trials: int, workers: int) -> None:
    """Exactly ``n_trials`` complete trials, numbers 0..n-1, each in one worker's dir; every
    worker's sweep.json lists all of them."""
    from optuna.trial import TrialState

    study = load_study(url, name)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(n_trials))
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    dirs = {
        i: sorted(int(p.parent.name) for p in (cwd / f"w{i}").glob("*/summary.json"))
        for i in range(workers)
    }
    ran = sorted(n for numbers in dirs.values() for n in numbers)
    assert ran == list(range(n_trials)), dirs  # no number twice, none missing
    assert sum(bool(numbers) for numbers in dirs.values()) >= 2, dirs  # they shared the work
    for i in range(workers):
        listed = json.loads((cwd / f"w{i}" / "sweep.json").read_text())["trials"]
        assert [t["number"] for t in listed] == list(range(n_trials))
        assert {t["status"] for t in listed} == {"completed"}
        for t in listed:  # each trial's own summary, wherever it ran
            assert read_summary(Path(cwd, t["dir"]))["status"] == "completed"


def shared_sweep_args(url: str, name: str, n_trials: int) -> list[str]:
    return [
        "sweep=random",
        f"hydra.sweeper.storage={url}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.n_trials={n_trials}",
        "trainer.max_epochs=3",
        *TINY,
    ]


# --- many workers, one study ------------------------------------------------------------------
def test_two_workers_share_one_journal_study(tmp_path):
    url = f"journal:///{tmp_path}/studies/lr.log".replace(":////", ":///")
    args = [*shared_sweep_args(url, "lr", 4), "trainer.monitor=val/loss"]
    results = finish(start_workers(tmp_path, 2, args))
    for code, stdout, stderr in results:
        assert code == 0, stderr[-3000:]
        assert "4 of 4 trials succeeded" in stdout
    check_shared_study(tmp_path, url, "lr", 4, 2)
    # the direction followed the monitored loss: minimised, the best trial the lowest loss
    study = load_study(url, "lr")
    assert study.direction.name == "MINIMIZE"
    best = json.loads((tmp_path / "w0" / "sweep.json").read_text())["best"]
    assert best["number"] == study.best_trial.number
    assert best["objective"] == min(t.value for t in study.trials)


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(versions[-1]) if versions else None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL cluster on a free loopback port (initdb + pg_ctl; as the
    ``postgres`` user when we are root, since PostgreSQL refuses to run as root), stopped and
    removed after the test. Skips, saying why, where the server is not installed."""
    pytest.importorskip("psycopg", reason="psycopg (dlx's PostgreSQL driver) not installed")
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server not installed (no initdb/pg_ctl): apt-get install postgresql "
            "(.ci/run does)"
        )
    run_as: list[str] = []
    root = tempfile.mkdtemp(prefix="dlx-pg-")
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = f"{root}/data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*run_as, initdb, "-D", data, "-U", "dlx", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
    subprocess.run(
        [*run_as, pg_ctl, "-D", data, "-o", opts, "-l", f"{root}/log", "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://dlx@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    results = finish(start_workers(tmp_path, 2, shared_sweep_args(postgres_url, "pg", 3)))
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    check_shared_study(tmp_path, postgres_url, "pg", 3, 2)


def test_a_sigkilled_workers_trial_is_failed_and_continued_by_another(tmp_path):
    """Worker A is killed mid-trial; worker B, on the same journal, sees the trial's
    heartbeat stop, fails it, and runs it again from A's last.pt in its own sweep dir."""
    from optuna.trial import TrialState

    url = f"journal:///{tmp_path}/study.log".replace(":////", ":///")
    args = [
        *shared_sweep_args(url, "kill", 1),
        "trainer.max_epochs=6",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=3",
    ]
    (a,) = start_workers(tmp_path, 1, args)
    first = tmp_path / "w0" / "0" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    try:
        while not first.exists():
            assert a.poll() is None and time.monotonic() < deadline, a.communicate()
            time.sleep(0.05)
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    assert load_study(url, "kill").trials[0].state == TrialState.RUNNING
    b = subprocess.run(
        dlx_argv("train", "-m", *args, "hydra.sweep.dir=w1"),
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert b.returncode == 0, b.stderr[-3000:]
    assert "trial 0: no heartbeat from its worker" in b.stdout + b.stderr
    study = load_study(url, "kill")
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]  # nothing left RUNNING
    assert study.trials[1].params == study.trials[0].params
    # the retry continued A's run: its dir moved to B's sweep dir, epochs 1..6 once each
    assert not (tmp_path / "w0" / "0").exists()
    run_dir = tmp_path / "w1" / "1"
    assert read_summary(run_dir)["status"] == "completed"
    assert read_summary(run_dir)["epochs"] == 6
    assert [step for step, _ in scalar_tags(run_dir)["epoch"]] == sorted(
        {step for step, _ in scalar_tags(run_dir)["epoch"]}
    )  # one event per epoch: the resume dropped nothing twice
    assert [v for _, v in scalar_tags(run_dir)["epoch"]] == [1, 2, 3, 4, 5, 6]
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    listed = json.loads((tmp_path / "w1" / "sweep.json").read_text())["trials"]
    assert [(t["number"], t["status"]) for t in listed] == [(1, "completed")]


# --- pruning ----------------------------------------------------------------------------------
def test_a_median_pruned_random_sweep_prunes_bad_trials_and_completes_the_rest(dlx):
    import optuna
    from optuna.trial import TrialState

    from test_sweep import hparams_sessions

    args = [
        "train",
        "-m",
        "sweep=random",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweep.dir=sw",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.progress=false",
    ]
    r = dlx(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    sw = dlx.cwd / "sw"
    trials = json.loads((sw / "sweep.json").read_text())["trials"]
    status = {t["number"]: t["status"] for t in trials}
    pruned = [n for n, s in status.items() if s == "pruned"]
    assert len(status) == 8 and set(status.values()) == {"completed", "pruned"}, status
    assert status[0] == status[1] == "completed"  # the median needs n_startup_trials first
    study = optuna.load_study(study_name="dlx", storage=open_storage(default_storage(sw)))
    states = {t.number: t.state for t in study.trials}
    assert {n for n, s in states.items() if s == TrialState.PRUNED} == set(pruned)
    sessions = hparams_sessions(sw)
    saved = 0
    for n in pruned:  # its files say pruned; its metrics are the epochs it trained
        summary = read_summary(sw / str(n))
        assert summary["status"] == "pruned" and summary["epochs"] < 3
        assert summary["stop_reason"].startswith(f"MedianPruner pruned trial {n} at epoch ")
        assert "val/acc" in summary["metrics"] and "test/acc" not in summary["metrics"]
        assert len(study.trials[n].intermediate_values) == summary["epochs"]
        assert sessions[str(n)][1] == "STATUS_UNKNOWN"
        saved += 3 - summary["epochs"]
    assert f"{len(pruned)} pruned (pruning saved {saved} of 24 epochs)" in r.stdout
    assert "pruned" in dlx("runs", "sw").stdout
    # a resume of the sweep runs nothing again: a pruned trial stays pruned
    mtimes = {n: (sw / str(n) / "summary.json").stat().st_mtime_ns for n in status}
    r = dlx(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {n: (sw / str(n) / "summary.json").stat().st_mtime_ns for n in status} == mtimes
    again = json.loads((sw / "sweep.json").read_text())["trials"]
    assert {t["number"]: t["status"] for t in again} == status


# --- units ------------------------------------------------------------------------------------
def test_the_direction_follows_the_metric_unless_set():
    from hydra_plugins.dlx_optuna_sweeper.sweeper import direction_for

    assert direction_for(None, "val/loss") == "minimize"
    assert direction_for(None, "val/acc") == "maximize"
    assert direction_for(None, "train/loss", "auto") == "minimize"
    assert direction_for(None, "val/ppl", "auto") == "minimize"
    assert direction_for(None, "val/acc", "min") == "minimize"  # trainer.mode says so
    assert direction_for("maximize", "val/loss") == "maximize"  # set: kept


def test_a_bad_direction_names_the_key():
    from dlx.errors import UsageError
    from hydra_plugins.dlx_optuna_sweeper.sweeper import direction_for

    with pytest.raises(UsageError, match=r"hydra\.sweeper\.direction=up: choose maximize"):
        direction_for("up", "val/acc")


def test_pruners_by_group_or_by_name():
    import optuna
    from omegaconf import OmegaConf

    from hydra_plugins.dlx_optuna_sweeper.config import PRUNERS
    from hydra_plugins.dlx_optuna_sweeper.study import build_pruner

    kinds = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
    }
    assert set(PRUNERS) == set(kinds)
    for name, kind in kinds.items():
        assert type(build_pruner(name)) is kind
        assert type(build_pruner(OmegaConf.structured(PRUNERS[name]))) is kind
    node = OmegaConf.merge(OmegaConf.structured(PRUNERS["median"]), {"n_warmup_steps": 3})
    assert build_pruner(node)._n_warmup_steps == 3
    assert type(build_pruner(None)) is optuna.pruners.NopPruner


def test_bad_sweeper_settings_exit_2_naming_the_key(dlx):
    r = dlx("train", "-m", "sweep=random", "hydra.sweeper.pruner=bogus", "hydra.sweep.dir=sw")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "dlx train: error: hydra.sweeper.pruner=bogus: unknown pruner; choose one of: "
        "none, median, percentile, successive_halving, hyperband"
    )
    assert "Traceback" not in r.stderr


def test_storage_urls_are_checked():
    from dlx.errors import UsageError
    from hydra_plugins.dlx_optuna_sweeper.study import open_storage

    with pytest.raises(UsageError, match="a journal path must be absolute"):
        open_storage("journal://rel/x.log")
    with pytest.raises(UsageError, match="not a storage URL"):
        open_storage("/tmp/study.db")


def test_claims_never_exceed_n_trials_and_retries_take_the_dead_trials_place(tmp_path):
    """The study-side logic without training: two storages on one journal stand for two
    workers; a trial whose heartbeat stopped is failed once and queued again."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from hydra_plugins.dlx_optuna_sweeper import study as shared

    url = f"journal:///{tmp_path}/s.log".replace(":////", ":///")
    a, b = (
        optuna.create_study(study_name="u", storage=shared.open_storage(url), load_if_exists=True)
        for _ in range(2)
    )
    space = {"x": FloatDistribution(0, 1)}
    t0, t1 = a.ask(space), b.ask(space)
    assert (t0.number, t1.number) == (0, 1)
    beat = shared.Heartbeat(a._storage, 60)
    beat.add(t0._trial_id)
    beat.stop()
    b._storage.set_trial_system_attr(t1._trial_id, shared.HEARTBEAT, time.time())
    assert shared.fail_stale(b, grace_period=30, max_retry=1) == []
    a._storage.set_trial_system_attr(t0._trial_id, shared.HEARTBEAT, time.time() - 100)
    assert shared.fail_stale(b, grace_period=30, max_retry=1) == [0]
    assert shared.fail_stale(a, grace_period=30, max_retry=1) == []  # failed once only
    trials = a.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert sum(shared.counts(t) for t in trials) == 2  # the retry counts, the dead one not
    retry = a.ask(space)
    assert retry.number == 2 and retry.params == t0.params
    assert a._storage.get_trial(retry._trial_id).system_attrs[shared.RETRY_OF] == 0
    lock = shared.ClaimLock(url, "u")
    with lock():
        pass
    lock.close()


# --- pruning, against a stand-in for the core's Run ---------------------------------------------
class FakeRun:
    """What the pruning callback reads of a run: trainer.monitor, state.epoch, request_stop,
    the process group (one process here)."""

    def __init__(self, monitor: str = "val/acc") -> None:
        from types import SimpleNamespace

        from dlx.engine.distributed import Dist

        self.ctx, self.device = Dist(), None
        self.trainer = SimpleNamespace(monitor=monitor, max_epochs=3)
        self.state = SimpleNamespace(epoch=0)
        self.stopped: tuple[str, str] | None = None

    def request_stop(self, status: str, reason: str) -> None:
        self.stopped = (status, reason)


def test_the_pruning_callback_reports_each_epoch_and_stops_a_bad_trial():
    import optuna

    from dlx.callbacks.pruning import Pruning
    from hydra_plugins.dlx_optuna_sweeper.study import STATUS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    good = study.ask()
    for epoch, acc in enumerate([0.5, 0.7, 0.9], start=1):
        good.report(acc, epoch)
    study.tell(good, 0.9)

    trial = study.ask()
    callback, run = Pruning(trial), FakeRun()
    for epoch, acc in enumerate([0.6, 0.65], start=1):  # above the median at epoch 1, below at 2
        run.state.epoch = epoch
        callback.on_epoch_end(run, {"val/acc": acc, "val/loss": 1.0})
        if run.stopped:
            break
    assert run.state.epoch == 2
    assert run.stopped == ("pruned", "MedianPruner pruned trial 1 at epoch 2: val/acc 0.65")
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {1: 0.6, 2: 0.65}
    assert study._storage.get_trial(trial._trial_id).user_attrs[STATUS] == "pruned"
    callback.on_epoch_end(run, {"val/acc": 0.1})  # a resumed epoch 2: reported once only
    assert study._storage.get_trial(trial._trial_id).intermediate_values[2] == 0.65

    last, run = study.ask(), FakeRun()  # the last epoch is reported, never pruned
    run.state.epoch = 3
    Pruning(last).on_epoch_end(run, {"val/acc": 0.01})
    assert run.stopped is None and study._storage.get_trial(last._trial_id).intermediate_values


def test_a_run_outside_an_optuna_sweep_gets_no_pruning_callback():
    from dlx.callbacks.pruning import pruning_callback

    assert pruning_callback(FakeRun()) is None  # no Hydra job at all (dlx resume, tests)
