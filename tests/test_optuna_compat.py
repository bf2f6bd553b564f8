"""dlx's sweeper as a drop-in for hydra-optuna-sweeper: the published plugin's own test suite
(plugins/hydra_optuna_sweeper/tests in the Hydra repository) ported to ``hydra/sweeper=
dlx_optuna``, on small arithmetic Hydra apps of our own (tests/optuna_apps/: no training).

Where dlx deliberately differs (README, Sweeps: "As hydra-optuna-sweeper"), the case pins
dlx's behaviour: ``range``'s upper bound is excluded, the study is stored in the sweep dir,
a failed trial does not stop the sweep unless ``max_failure_rate`` says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hydra_plugins.dlx_optuna_sweeper.space import distribution, grid_values, search_space
from hydra_plugins.dlx_optuna_sweeper.study import default_storage, open_storage
from hydra_plugins.dlx_optuna_sweeper.sweeper import DlxOptunaSweeper

APPS = Path(__file__).parent / "optuna_apps"


def run_app(app: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python tests/optuna_apps/APP.py --multirun ARGS`` in the apps' folder."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    r = subprocess.run(
        [sys.executable, str(APPS / f"{app}.py"), "--multirun", *args],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def results(sweep_dir: Path) -> DictConfig:
    out = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert isinstance(out, DictConfig) and out.name == "optuna"
    return out


def test_discovery() -> None:
    assert DlxOptunaSweeper.__name__ in [x.__name__ for x in Plugins.instance().discover(Sweeper)]


def check_distribution(expected: BaseDistribution, actual: BaseDistribution) -> None:
    if not isinstance(expected, CategoricalDistribution):
        assert expected == actual
        return
    assert isinstance(actual, CategoricalDistribution)
    assert set(expected.choices) == set(actual.choices)  # shuffle() reorders them
    assert [type(c) for c in sorted(expected.choices)] == [type(c) for c in sorted(actual.choices)]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("key=choice(1,2)", CategoricalDistribution([1, 2])),
        ("key=choice(true, false)", CategoricalDistribution([True, False])),
        ("key=choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
        ("key=shuffle(range(1,3))", CategoricalDistribution((1, 2))),
        # dlx: range excludes its upper bound (the official plugin: IntUniform(1, 3))
        ("key=range(1,3)", IntDistribution(1, 2)),
        ("key=interval(1, 5)", FloatDistribution(1, 5)),
        ("key=int(interval(1, 5))", IntDistribution(1, 5)),
        ("key=tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True)),
        ("key=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
        # dlx: 0.5 … 4.5 (the official plugin: DiscreteUniform(0.5, 5.5, 1))
        ("key=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 4.5, step=1)),
    ],
)
def test_distribution_from_override(line: str, expected: BaseDistribution) -> None:
    parsed = OverridesParser.create().parse_overrides([line])[0]
    check_distribution(expected, distribution(parsed))


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["key=choice(1,2)"], ({"key": CategoricalDistribution([1, 2])}, [])),
        (["key=5"], ({}, ["key=5"])),
        (
            ["key1=choice(1,2)", "key2=5"],
            ({"key1": CategoricalDistribution([1, 2])}, ["key2=5"]),
        ),
        (
            ["key1=choice(1,2)", "key2=5", "key3=range(1,3)"],
            (
                {"key1": CategoricalDistribution([1, 2]), "key3": IntDistribution(1, 2)},
                ["key2=5"],
            ),
        ),
    ],
)
def test_params_from_overrides(lines: list[str], expected: tuple) -> None:
    """Fixed overrides stay as the user typed them (dlx passes them on as override lines)."""
    assert search_space(None, lines, OverridesParser.create()) == expected


def test_grid_values_of_ranges_and_choices() -> None:
    assert grid_values(FloatDistribution(-1.0, 0.0, step=1.0)) == [-1.0, 0.0]
    assert grid_values(IntDistribution(16, 64, step=16)) == [16, 32, 48, 64]
    assert grid_values(CategoricalDistribution(["foo", "bar"])) == ["foo", "bar"]


def test_launch_jobs(hydra_sweep_runner) -> None:
    """Hydra's own sweep runner on its test app: 8 trials in batches of 3, no params. dlx's
    sweep() returns each job's return (the official plugin's returns None)."""
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        config_path="configs",
        config_name="compose.yaml",
        task_function=None,
        overrides=[
            "hydra/sweeper=dlx_optuna",
            "hydra/launcher=basic",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.n_jobs=3",
        ],
    )
    with sweep:
        assert sweep.returns is not None and len(sweep.returns) == 8
        storage = open_storage(default_storage(Path(sweep.temp_dir)))
        study = optuna.load_study(storage=storage, study_name="dlx")
        assert [t.number for t in study.trials] == list(range(8))


@pytest.mark.parametrize("with_commandline", [True, False])
def test_sphere_example_with_tpe(with_commandline: bool, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    args = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-optuna-example",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",
    ]
    if with_commandline:
        args += ["x=choice(0, 1, 2)", "y=0"]  # y: a fixed parameter
    run_app("sphere", *args)
    returns = results(tmp_path)
    best = optuna.load_study(storage=storage, study_name="test-optuna-example").best_trial
    assert returns.best_params.x == best.params["x"]
    if with_commandline:
        assert "y" not in returns.best_params and "y" not in best.params
    else:
        assert returns.best_params.y == best.params["y"]
        assert type(returns.best_params.y) is int  # choice(-5, 0, 5) stays typed
    assert returns.best_value == best.value
    # the official threshold: the 95th percentile of TPE's best over 1000 seeds
    assert returns.best_value <= 2.27


@pytest.mark.parametrize("n_trials", [10, 1])
def test_grid_example(n_trials: int, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    run_app(
        "sphere",
        "--config-dir=grid_conf",
        "--config-name=grid",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=False",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=test-grid-sampler",
    )
    returns = results(tmp_path)
    bv, bx, by, bz = (returns.best_value, *(returns.best_params[k] for k in "xyz"))
    study = optuna.load_study(storage=storage, study_name="test-grid-sampler")
    if n_trials >= 8:  # the grid's 8 points, each once (n_trials is capped to the grid)
        assert len(study.trials) == 8
        assert {(t.params["x"], t.params["y"], t.params["z"]) for t in study.trials} == {
            (x, y, z) for x in (-1, 1) for y in (-1.0, 0.0) for z in ("foo", "bar")
        }
        assert bv == 1 and abs(bx) == 1 and by == 0
    else:
        assert len(study.trials) == 1 and bx in [-1, 1] and by in [-1, 0]
    assert bz in ["foo", "bar"]


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


@pytest.mark.parametrize("with_commandline", [True, False])
def test_multi_objective_example(with_commandline: bool, tmp_path: Path) -> None:
    args = [
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=12",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
    ]
    if with_commandline:
        args += ["x=range(0, 5)", "y=range(0, 3)"]
    run_app("multi_objective", *args)
    solutions = results(tmp_path).solutions
    assert len(solutions) >= 2
    steps = {0} if with_commandline else {0, 0.5}
    for a in solutions:
        assert a.params.x % 1 in steps and a.params.y % 1 in steps
        x, y = a.params.x, a.params.y
        assert list(a["values"]) == [4 * x**2 + 4 * y**2, (x - 5) ** 2 + (y - 5) ** 2]
        for b in solutions:  # the front's trials do not dominate each other
            assert not _dominates(list(a["values"]), list(b["values"]))


@pytest.mark.parametrize("sampler", ["nsgaii", "tpe", "motpe"])
def test_multi_objective_samplers(sampler: str, tmp_path: Path) -> None:
    """The app's own config (direction [minimize, minimize]) with each multi-objective
    sampler: NSGA-II (its default), TPE, and the official plugin's name motpe."""
    run_app(
        "multi_objective",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweeper.n_trials=6",
        f"hydra/sweeper/sampler={sampler}",
        "hydra.sweeper.sampler.n_startup_trials=3" if sampler != "nsgaii" else "x=range(0,5)",
    )
    assert OmegaConf.load(tmp_path / "multirun.yaml").hydra.sweeper.direction == [
        "minimize",
        "minimize",
    ]
    assert len(results(tmp_path).solutions) >= 1


def test_custom_search_space_example(tmp_path: Path) -> None:
    gap = 0.3
    run_app(
        "custom_space",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        f"max_z_difference_from_x={gap}",
    )
    best = results(tmp_path).best_params
    assert abs(best.x - best.z) <= gap
    assert 0 <= best["+w"] <= 1


@pytest.mark.parametrize("max_failure_rate", [0.5, 1.0])
def test_failure_rate(max_failure_rate: float, tmp_path: Path) -> None:
    r = run_app(
        "sphere",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        f"hydra.sweeper.max_failure_rate={max_failure_rate}",
        "error=true",
        check=False,
    )
    storage = open_storage(default_storage(tmp_path))
    trials = optuna.load_study(storage=storage, study_name="sphere").trials
    if max_failure_rate < 1.0:  # the first batch's failure is raised, the sweep stops
        assert "RuntimeError: cfg.error is True" in r.stderr
        assert r.returncode != 0 and len(trials) == 2
    else:  # every trial failed, recorded as failed; no result to write
        assert "RuntimeError: cfg.error is True" not in r.stderr
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(trials) == 6 and all(t.state.name == "FAIL" for t in trials)
        assert not (tmp_path / "optimization_results.yaml").exists()


def test_job_values_one_or_several() -> None:
    """A job's return: a float-castable number for one direction, a tuple or list of them for
    several; anything else (None, a wrong count, a non-finite value) fails the trial."""
    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.dlx_optuna_sweeper.results import values_of

    def ret(value: object) -> JobReturn:
        r = JobReturn()
        r.status, r._return_value = JobStatus.COMPLETED, value
        return r

    assert values_of(ret(2), 1) == [2.0] and values_of(ret([0.5]), 1) == [0.5]
    assert values_of(ret((1, 2.5)), 2) == [1.0, 2.5]
    for bad, n in [(None, 1), ([1.0], 2), ("x", 1), (float("nan"), 1), ((1, None), 2)]:
        assert values_of(ret(bad), n) is None
