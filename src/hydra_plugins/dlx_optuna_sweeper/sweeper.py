"""The ``dlx_optuna`` Hydra sweeper: asks Optuna for ``n_jobs`` trials at a time, launches
them through Hydra's launcher (basic, joblib, submitit) and tells Optuna their objective.

A trial whose job fails, or whose task returns no finite objective (failed or diverged run),
is told as failed and the sweep goes on. The study is stored in SQLite inside the sweep dir
by default; running the same command again resumes it: ``n_trials`` counts every trial of the
study, and trials left running by a killed sweep are launched again in their own dir.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

log = logging.getLogger(__name__)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override: ``a,b`` and ``choice(a,b)`` are
    categorical, ``range(lo,hi[,step])`` is discrete with ``hi`` excluded, ``interval(lo,hi)``
    is continuous (integer with ``tag(int, …)``), ``tag(log, …)`` makes it log-scaled."""
    value = override.value()
    log_scale = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        choices = [str(x) for x in override.sweep_iterator(transformer=Transformer.encode)]
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if all(isinstance(x, int) for x in (start, stop, step)):
            return IntDistribution(int(start), int(stop) - int(step), step=int(step), log=log_scale)
        return FloatDistribution(float(start), float(stop) - float(step), step=float(step))
    if isinstance(value, IntervalSweep):
        lo, hi = value.start, value.end
        if "int" in value.tags or (isinstance(lo, int) and isinstance(hi, int)):
            return IntDistribution(int(lo), int(hi), log=log_scale)
        return FloatDistribution(float(lo), float(hi), log=log_scale)
    raise ValueError(f"{override.input_line}: not a sweep Optuna understands")


def search_space(
    params: dict[str, str] | None, arguments: Sequence[str], parser: OverridesParser
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The distributions to sample and the fixed overrides every trial gets.

    ``params`` (the config's search space) come first; a command-line argument for the same
    key replaces it, so the command line extends or narrows a preset's space.
    """
    by_key: dict[str, Override] = {}
    lines = [f"{k}={v}" for k, v in (params or {}).items()]
    for ov in parser.parse_overrides([*lines, *arguments]):
        by_key[ov.get_key_element()] = ov
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for key, ov in by_key.items():
        if ov.is_sweep_override():
            space[key] = distribution(ov)
        else:
            fixed.append(ov.input_line or f"{key}={ov.get_value_element_as_str()}")
    return space, fixed


def objective_of(ret: JobReturn) -> float | None:
    """A finished job's objective, or None when the job failed or returned nothing finite."""
    if ret.status != JobStatus.COMPLETED:
        return None
    value = ret._return_value
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def consecutive(numbers: list[int]) -> list[list[int]]:
    """``[3, 4, 7, 8, 9]`` -> ``[[3, 4], [7, 8, 9]]``: runs the launcher can take at once."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][-1] + 1 == n:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


class DlxOptunaSweeper(Sweeper):
    """Hydra sweeper driving an Optuna study; job ``N`` of the sweep is Optuna trial ``N``."""

    def __init__(
        self,
        sampler: Any,
        direction: str = "maximize",
        storage: str | None = None,
        study_name: str = "dlx",
        n_trials: int = 20,
        n_jobs: int = 1,
        params: dict[str, str] | None = None,
    ) -> None:
        self.sampler_cfg = sampler
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = max(1, n_jobs)
        self.params = dict(params) if params else None
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # --- the study ------------------------------------------------------------------------
    def _study(self, sweep_dir: Path, space: dict[str, BaseDistribution]) -> optuna.Study:
        storage = self.storage or f"sqlite:///{sweep_dir.resolve() / 'optuna.db'}"
        kwargs: dict[str, Any] = {}
        if self.sampler_cfg is not None and "GridSampler" in str(
            self.sampler_cfg.get("_target_", "")
        ):
            grid = {
                k: list(d.choices)
                for k, d in space.items()
                if isinstance(d, CategoricalDistribution)
            }
            grid.update(
                {
                    k: list(range(d.low, d.high + 1, d.step))
                    for k, d in space.items()
                    if isinstance(d, IntDistribution)
                }
            )
            if len(grid) != len(space):
                raise ValueError(
                    "hydra/sweeper/sampler=grid takes choice and integer range params only"
                )
            kwargs["search_space"] = grid
        sampler = instantiate(self.sampler_cfg, **kwargs) if self.sampler_cfg else None
        return optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            sampler=sampler,
            direction=self.direction,
            load_if_exists=True,
        )

    def _launch(
        self, study: optuna.Study, trials: dict[int, optuna.trial.BaseTrial], fixed: list[str]
    ) -> list[JobReturn]:
        """Launch ``trials`` (by number; their dir is the sweep dir's ``<number>``) and tell
        Optuna each one's objective."""
        assert self.launcher is not None
        returns: list[JobReturn] = []
        for run in consecutive(sorted(trials)):
            overrides = [[*fixed, *(f"{k}={v}" for k, v in trials[n].params.items())] for n in run]
            self.validate_batch_is_legal(overrides)
            results = self.launcher.launch(overrides, initial_job_idx=run[0])
            for n, ret in zip(run, results):
                value = objective_of(ret)
                if value is None:
                    study.tell(n, state=TrialState.FAIL)
                else:
                    study.tell(n, value)
            returns.extend(results)
        return returns

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = search_space(self.params, arguments, parser)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = self._study(sweep_dir, space)
        returns: list[JobReturn] = []

        # A killed sweep leaves trials RUNNING: run them again, in their own dirs.
        stale = {
            t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
        if stale:
            log.info(f"resuming: running {len(stale)} interrupted trial(s) again")
            returns += self._launch(study, stale, fixed)
        done = len(study.trials)
        if done:
            log.info(f"study {self.study_name}: {done} of {self.n_trials} trials already run")
        while len(study.trials) < self.n_trials:
            size = min(self.n_jobs, self.n_trials - len(study.trials))
            batch = {}
            for _ in range(size):
                trial = study.ask(space)
                batch[trial.number] = trial
            returns += self._launch(study, batch, fixed)
        return returns
