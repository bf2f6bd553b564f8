"""A sweep trial's fixed cost: each trial composed once, data loaded once per process, one
provenance snapshot per sweep, joblib workers sharing the cores. Correctness only: the
figures are ``bench/sweep_cost.py``'s."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from dlx.data import DATASETS, build_data
from dlx.data.base import InMemoryData
from dlx.data.cache import CACHE, DataCache, key_of
from dlx.engine import provenance
from dlx.sweep import job
from dlx.sweep.compose import ComposeOnce

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.progress=false",
]
CPU = torch.device("cpu")


def sweep_in_process(monkeypatch, tmp_path: Path, *args: str) -> tuple[int, int, Path]:
    """``dlx train -m ARGS`` in this process: (exit code, full compositions, sweep dir)."""
    from dlx.sweep import launch

    calls = []
    compose = ConfigLoaderImpl.load_sweep_config

    def counted(self, master_config, sweep_overrides):
        calls.append(list(sweep_overrides))
        return compose(self, master_config, sweep_overrides)

    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", counted)
    monkeypatch.chdir(tmp_path)
    sweep_dir = tmp_path / "sweep"
    code = launch.train(["-m", *args, *TINY, f"hydra.sweep.dir={sweep_dir}"])
    return code, len(calls), sweep_dir


def test_a_grid_composes_each_trial_once_and_every_trial_records_its_provenance(
    monkeypatch, tmp_path
):
    snapshots = provenance.SNAPSHOTS.taken
    code, compositions, sweep_dir = sweep_in_process(monkeypatch, tmp_path, "optim.lr=0.01,0.003")
    assert code == 0
    # the first trial composed, the second derived from it (Hydra's basic sweeper: 4
    # compositions, the batch check's and each launch's)
    assert compositions == 1
    records = [json.loads((sweep_dir / t / "provenance.json").read_text()) for t in "01"]
    assert provenance.SNAPSHOTS.taken == snapshots + 1  # one snapshot for the sweep ...
    for key in ("git", "packages", "versions", "host"):  # ... that each trial records
        assert records[0][key] == records[1][key]
    assert all(r["time"] and r["packages"] for r in records)
    for t, lr in zip("01", (0.01, 0.003)):
        assert json.loads((sweep_dir / t / "summary.json").read_text())["status"] == "completed"
        assert OmegaConf.load(sweep_dir / t / ".hydra" / "config.yaml").optim.lr == lr


def test_hydras_own_basic_sweeper_still_composes_twice(monkeypatch, tmp_path):
    args = ("hydra/sweeper=basic", "optim.lr=0.01,0.003")
    code, compositions, _ = sweep_in_process(monkeypatch, tmp_path, *args)
    assert (code, compositions) == (0, 4)


def test_an_optuna_sweep_composes_each_trial_once(monkeypatch, tmp_path):
    args = ("sweep=tpe", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=0")
    code, compositions, sweep_dir = sweep_in_process(monkeypatch, tmp_path, *args)
    assert (code, compositions) == (0, 1)  # the second trial: derived from the first
    assert all((sweep_dir / t / "provenance.json").is_file() for t in "01")


def test_trials_open_their_storage_once_until_its_file_is_replaced(tmp_path):
    from hydra_plugins.dlx_optuna_sweeper.opened import OpenedStorages

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    opened = OpenedStorages()
    first = opened.get(url)
    assert opened.get(url) is first
    (tmp_path / "optuna.db").unlink()
    (tmp_path / "optuna.db").write_bytes(b"")  # another study's file at the same path
    assert opened.get(url) is not first


@pytest.fixture
def loader():
    """Hydra's config loader on dlx's config tree and the multirun master config."""
    from hydra import initialize_config_module

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="dlx.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["hydra.sweep.dir=x"], RunMode.MULTIRUN)
        yield loader, master
    GlobalHydra.instance().clear()


TRIALS = [
    ["model=mlp", "optim.lr=0.1"],
    ["optim=sgd", "optim.lr=0.1", "data.batch_size=64"],
    ["model=mlp", "optim=sgd"],
    ["regularization=label_smoothing", "optim.lr=0.1"],
]


def test_composed_once_is_what_hydra_composes(loader):
    loader, master = loader
    plain = [OmegaConf.to_yaml(loader.load_sweep_config(master, t)) for t in TRIALS]
    once = ComposeOnce(loader)
    once.check(master, TRIALS[:2])
    assert once.compositions == 2
    got = [OmegaConf.to_yaml(once.load_sweep_config(master, t)) for t in TRIALS]
    assert got == plain  # the kept two, then two fresh ones from the shared file cache
    assert once.compositions == 4 and not once.kept
    again = once.load_sweep_config(master, TRIALS[0])  # taken once: composed afresh
    assert OmegaConf.to_yaml(again) == plain[0] and once.compositions == 5


#: (a trial's overrides, whether it may be derived from the trial before it)
SIBLINGS = [
    (["model=mlp", "optim.lr=0.1", "data.batch_size=32"], False),  # the first: composed
    (["model=mlp", "optim.lr=0.01", "data.batch_size=64"], True),  # values only
    (["model=mlp", "optim.lr=${optim.weight_decay}", "data.batch_size=64"], True),
    (["model=mlp", "optim.lr='1e-3'", "data.batch_size=64"], True),  # a quoted string
    (["model=lenet", "optim.lr=0.01", "data.batch_size=64"], False),  # a group's option
    (["model=lenet", "optim.lr=0.02", "data.batch_size=64", "trainer.seed=3"], False),
    (["model=lenet", "optim.lr=0.03", "data.batch_size=64", "trainer.seed=4"], True),
    (["model=lenet", "optim.lr=0.03", "data.batch_size=64", "+trainer.extra=4"], False),
    (["model=lenet", "optim.lr=0.03", "data.batch_size=64", "+trainer.extra=5"], False),
    (["model=lenet", "optim.lr=0.03", "data.batch_size=64", "hydra.job.name=x"], False),
    (["model=lenet", "optim.lr=0.03", "data.batch_size=64", "hydra.job.name=y"], False),
    (["model=lenet", "optim.lr=0.3", "optim.lr=0.04", "trainer.seed=4"], False),
    (["model=lenet", "optim.lr=0.3", "optim.lr=0.05", "trainer.seed=4"], False),  # twice
    (["model=lenet", "optim.lr=0.3", "optim=sgd", "trainer.seed=4"], False),
    (["model=lenet", "optim.lr=0.3", "optim=adam", "trainer.seed=4"], False),
    (["model=mlp", "optim.lr=0.1", "~optim.weight_decay"], False),
    (["model=mlp", "optim.lr=0.2", "~optim.weight_decay"], True),  # another key deleted
    # a later override of a node above the key wins in Hydra: composed, never derived
    (
        ["regularization=[ema]", "regularization.ema.decay=0.5", "regularization.ema={decay:0.9}"],
        False,
    ),
    (
        ["regularization=[ema]", "regularization.ema.decay=0.6", "regularization.ema={decay:0.9}"],
        False,
    ),
    (["regularization=[ema]", "regularization.ema.decay=0.7"], False),
    (["regularization=[ema]", "regularization.ema.decay=0.8"], True),  # beside its group
]


def test_a_sibling_derived_from_a_composed_trial_is_what_hydra_composes(loader):
    """A trial that differs from the last composed one only in plain values is derived from
    it, never composed; the config (its hydra node with ``overrides.task`` and
    ``override_dirname`` included) is Hydra's own composition's."""
    loader, master = loader
    plain = [OmegaConf.to_yaml(loader.load_sweep_config(master, t)) for t, _ in SIBLINGS]
    once = ComposeOnce(loader)
    for (trial, derivable), want in zip(SIBLINGS, plain):
        before = once.derived
        got = once.load_sweep_config(master, trial)
        assert OmegaConf.to_yaml(got) == want, trial
        assert once.derived - before == derivable, trial
        got.optim.lr = 123.0  # the launcher's to change: the next sibling is unaffected
    assert once.compositions + once.derived == len(SIBLINGS)


def test_a_worker_gets_the_loader_without_the_kept_configs(loader):
    loader, master = loader
    once = ComposeOnce(loader)
    once.check(master, TRIALS[:1])
    copy = pickle.loads(pickle.dumps(once))
    assert not copy.kept and copy.compositions == 0
    files = copy.loader.repository.cache
    assert files is not once.loader.repository.cache  # a worker reads its own files ...
    assert pickle.loads(pickle.dumps(once)).loader.repository.cache is files  # ... once
    assert OmegaConf.to_yaml(copy.load_sweep_config(master, TRIALS[0])) == OmegaConf.to_yaml(
        once.load_sweep_config(master, TRIALS[0])
    )


def test_a_bad_override_fails_the_batch_check(loader):
    from hydra.errors import ConfigCompositionException

    loader, master = loader
    with pytest.raises(ConfigCompositionException):
        ComposeOnce(loader).check(master, [TRIALS[0], ["optim.nope=1"]])


def _digits(**keys):
    node = OmegaConf.load(Path(__file__).parents[1] / "src/dlx/conf/data/digits.yaml")
    node.update(keys)
    return node


def test_a_cache_hit_is_the_data_a_fresh_load_gives():
    CACHE.clear()
    first, second = build_data(_digits(), CPU), build_data(_digits(), CPU)
    fresh = DATASETS.get("digits").builder(DATASETS.parse(_digits()), CPU)
    assert CACHE.hits >= 1 and first is not second
    for data in (first, second):
        assert data.info == fresh.info
        for split, (x, y) in fresh.splits.items():
            assert torch.equal(data.splits[split][0], x) and torch.equal(data.splits[split][1], y)


def test_a_runs_own_changes_leave_the_kept_data_alone():
    CACHE.clear()
    whole = build_data(_digits(), CPU)
    half = build_data(_digits(train_fraction=0.5), CPU)  # another key: its own data
    again = build_data(_digits(), CPU)
    assert half.info.sizes["train"] < whole.info.sizes["train"] == again.info.sizes["train"]
    again.splits["train"] = again.splits["val"]
    assert build_data(_digits(), CPU).splits["train"][1].shape == whole.splits["train"][1].shape
    assert key_of(DATASETS.parse(_digits()), CPU) != key_of(DATASETS.parse(_digits()), "cuda")


def test_a_build_that_draws_from_the_global_random_state_is_not_kept():
    from dlx.data.base import DataInfo

    cache = DataCache()
    info = DataInfo("noise", "image", 2, image_size=8)

    def build() -> InMemoryData:
        x = (torch.rand(4, 1, 8, 8) * 255).to(torch.uint8)  # the global generator
        return InMemoryData(info, {"train": (x, torch.zeros(4).long())}, 2, CPU)

    cache.get("k", build), cache.get("k", build)
    assert (cache.hits, cache.misses) == (0, 2)


def test_parallel_jobs_divide_the_cores_unless_the_threads_are_set(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    job.configure_job(0, 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    job.configure_job(1, 2)
    job.configure_job(2, None)
    assert calls == [job.threads_per_job(2, len(__import__("os").sched_getaffinity(0)))]


def test_a_two_worker_joblib_sweep_writes_every_trials_records(dlx, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=0.01,0.003,0.001"]
    r = dlx("train", "-m", *args, *TINY, f"hydra.sweep.dir={sweep_dir}")
    assert r.returncode == 0, r.stderr[-2000:]
    for t in "012":
        for name in ("provenance.json", "summary.json", "metrics.csv", "trial.json"):
            assert (sweep_dir / t / name).is_file(), (t, name)
    assert len(json.loads((sweep_dir / "sweep.json").read_text())["trials"]) == 3


def test_a_search_path_reaches_the_trials_without_changing_the_loaders_sources(tmp_path):
    from hydra import initialize_config_module

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "wide.yaml").write_text("defaults:\n  - mlp\n  - _self_\nhidden: [512]\n")
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="dlx.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        sources = [s.path for s in loader.get_sources()]
        searchpath = f"hydra.searchpath=[file://{tmp_path}]"
        master = loader.load_configuration("config", [searchpath], RunMode.MULTIRUN)
        once = ComposeOnce(loader)
        once.check(master, [["model=wide"]])
        assert list(once.load_sweep_config(master, ["model=wide"]).model.hidden) == [512]
        assert list(once.load_sweep_config(master, ["model=wide"]).model.hidden) == [512]
        assert [s.path for s in loader.get_sources()] == sources
    GlobalHydra.instance().clear()


def _options(group: str) -> list[str]:
    root = Path(__file__).parents[1] / "src/dlx/conf" / group
    return sorted(p.stem for p in root.glob("*.yaml") if p.stem != "none")


def test_a_config_parsed_as_given_is_what_omegaconfs_structured_merge_gives(monkeypatch):
    """``to_schema`` builds a group's dataclass straight from values that already have their
    field's type; every shipped option (and converted or wrong values, which take OmegaConf's
    path) parses to the spec OmegaConf's structured merge gives."""
    from dlx import registry
    from dlx.commands.runs import compose
    from dlx.engine.spec import parse
    from dlx.errors import UsageError

    cases = [[f"model={m}"] for m in _options("model")]
    cases += [[f"optim={o}"] for o in _options("optim")] + [
        [f"sched={s}"] for s in _options("sched")
    ]
    cases += [["data=mnist1d", "model=cnn1d"], ["data=adding", "model=lstm"]]
    cases += [[f"regularization=[{','.join(_options('regularization'))}]"]]
    cases += [[f"augment=[{a}]"] for a in _options("augment")]
    cases += [["optim.lr=1", "trainer.max_epochs=2", "model.hidden=[64,32]", "model=mlp"]]
    cases += [["optim.lr='0.5'"], ["trainer.max_epochs='3'"]]  # strings: OmegaConf converts
    fast = [parse(compose(c)) for c in cases]
    assert isinstance(fast[-2].optim.lr, float) and fast[-2].optim.lr == 0.5
    assert fast[-1].trainer.max_epochs == 3 and isinstance(fast[-3].optim.lr, float)
    from dlx.trainer import TrainerConfig

    # "???" (missing) is never taken as a value: OmegaConf's merge keeps the default
    assert registry.to_schema({"device": "???"}, TrainerConfig, "trainer").device == "auto"
    with pytest.raises(UsageError, match=r"trainer\.max_epochs=abc: wrong type"):
        parse(compose(["trainer.max_epochs=abc"]))

    def never(data, schema):
        raise registry.NotAsGiven(schema)

    monkeypatch.setattr(registry, "typed_as_given", never)
    assert [parse(compose(c)) for c in cases] == fast


def test_the_test_pass_reads_best_pt_only_when_the_model_has_moved_on(monkeypatch, tmp_path):
    """A run whose best epoch is its last tests the model as it is (best.pt holds exactly
    those weights); one whose best epoch is earlier, or with an EMA, reloads best.pt. Either
    way the test figures are those ``dlx eval`` gets from best.pt."""
    from dlx.commands.runs import compose, evaluate_run
    from dlx.engine import checkpoint
    from dlx.engine.loop import run
    from dlx.engine.spec import parse

    loads = []
    load = checkpoint.load
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: loads.append(a[0]) or load(*a, **k))
    cases = {  # overrides -> best.pt loads by the test pass
        "last": (["optim.lr=0.003"], 0),
        "ema": (["optim.lr=0.003", "regularization=[ema]"], 1),
        "earlier": (["optim.lr=3", "trainer.on_nonfinite=skip"], 1),  # seeded: epoch 2 worse
    }
    for name, (overrides, want) in cases.items():
        cfg = compose([*TINY, "trainer.max_epochs=2", "trainer.limit_train_batches=4", *overrides])
        loads.clear()
        summary = run(cfg, tmp_path / name, quiet=True)
        tested = [p for p in loads if p.name == "best.pt"]
        assert len(tested) == want, (name, summary["best_epoch"])
        again = evaluate_run(parse(cfg), tmp_path / name)
        assert again["test/acc"] == summary["metrics"]["test/acc"], name


def test_a_finished_sweeps_idle_joblib_workers_are_stopped_at_once():
    """``stop_idle_workers`` finds joblib's pool (loky's reusable executor) and stops its
    workers, so the sweep's exit does not wait for each one's Python teardown."""
    from joblib.externals.loky import get_reusable_executor

    from dlx.sweep.watchdog import stop_idle_workers

    pool = get_reusable_executor(max_workers=1)
    assert pool.submit(sum, [1, 2]).result() == 3
    workers = list(pool._processes.values())
    assert workers and all(w.is_alive() for w in workers)
    stop_idle_workers()
    assert not any(w.is_alive() for w in workers)
    fresh = get_reusable_executor(max_workers=1)
    assert fresh is not pool  # a new sweep gets a new pool
    fresh.shutdown(wait=True, kill_workers=True)


def test_a_sweeps_study_is_a_journal_file_unless_an_older_dlx_left_a_sqlite_one(tmp_path):
    from hydra_plugins.dlx_optuna_sweeper.study import default_storage

    assert default_storage(tmp_path) == f"journal://{tmp_path.resolve() / 'optuna.log'}"
    (tmp_path / "optuna.db").write_bytes(b"")  # a sweep dir from before: its re-run resumes it
    assert default_storage(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
