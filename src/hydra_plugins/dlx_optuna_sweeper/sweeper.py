"""The ``dlx_optuna`` Hydra sweeper: asks Optuna for ``n_jobs`` trials at a time, launches
them through Hydra's launcher (basic, joblib, submitit) and tells Optuna their objective
(or objectives: a list of directions, a job returning one value each; ``results``).

A trial whose job fails, or whose task returns no finite objective (failed or diverged run),
is told as failed and the sweep goes on (unless more than ``max_failure_rate`` of a batch
failed); one its pruner stopped is told as pruned. The end of the study is written to
``optimization_results.yaml``, as hydra-optuna-sweeper does. The study
is stored in SQLite inside the sweep dir by default; running the same command again resumes
it. Several workers (``dlx train -m`` processes, on one machine or many) started with the same
``storage`` and ``study_name`` share the study: ``n_trials`` counts every worker's trials, each
worker claims its next trial as soon as it is free, and a dead worker's trial is failed after
``grace_period`` seconds without its heartbeat and queued again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from dlx.errors import UsageError
from dlx.sweep.compose import ComposesOnce, composing_once
from hydra_plugins.dlx_optuna_sweeper import results
from hydra_plugins.dlx_optuna_sweeper import study as shared
from hydra_plugins.dlx_optuna_sweeper.directions import direction_for, resolve
from hydra_plugins.dlx_optuna_sweeper.space import (
    custom_space,
    grid,
    override_value,
    search_space,
)
from hydra_plugins.dlx_optuna_sweeper.trials import consecutive, take_over, tell

__all__ = ["DlxOptunaSweeper", "consecutive", "direction_for", "search_space"]

log = logging.getLogger(__name__)


class DlxOptunaSweeper(ComposesOnce, Sweeper):
    """Hydra sweeper driving an Optuna study; job ``N`` of the sweep is Optuna trial ``N``
    (each composed once: ``dlx.sweep.compose``)."""

    def __init__(
        self,
        sampler: Any,
        pruner: Any = None,
        direction: Any = None,
        storage: str | None = None,
        study_name: str | None = "dlx",
        n_trials: int = 20,
        n_jobs: int = 1,
        heartbeat_interval: int = 10,
        grace_period: int = 60,
        max_retry: int = 1,
        max_failure_rate: float = 1.0,
        custom_search_space: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.sampler_cfg = sampler
        self.pruner_cfg = pruner
        self.direction = direction
        self.storage = storage
        self.study_name = study_name or "dlx"  # each job opens the study by its name
        self.n_trials = n_trials
        self.n_jobs = max(1, n_jobs)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retry = max_retry
        if not 0.0 <= max_failure_rate <= 1.0:
            raise UsageError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate}: a fraction in [0, 1]"
            )
        self.max_failure_rate = max_failure_rate
        self.custom_search_space = custom_search_space
        self.params = dict(params) if params else None
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None
        self.lock: shared.ClaimLock | None = None  # set up by sweep()
        self.heartbeat: shared.Heartbeat | None = None
        self.extend: Callable[[DictConfig, optuna.Trial], None] | None = None
        self.directions: list[str] = []

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        hydra_context = composing_once(hydra_context)  # the check's configs go to the launcher
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # --- the study ------------------------------------------------------------------------
    def _is_grid(self) -> bool:
        target = str((self.sampler_cfg or {}).get("_target_", ""))
        return target.endswith("GridSampler")

    def _sampler(self, space: dict[str, BaseDistribution]) -> Any:
        if self.sampler_cfg is None:
            return None
        if not self._is_grid():
            return instantiate(self.sampler_cfg)
        values = grid(space)
        size = 1
        for v in values.values():
            size *= len(v)
        if self.n_trials > size:
            log.info(f"grid of {size} points: n_trials {self.n_trials} -> {size}")
            self.n_trials = size
        return instantiate(self.sampler_cfg, search_space=values)

    def _pruner(self) -> Any:
        pruner = shared.build_pruner(self.pruner_cfg)
        if len(self.directions) > 1 and not isinstance(pruner, optuna.pruners.NopPruner):
            raise UsageError(
                f"hydra.sweeper.pruner: {type(pruner).__name__} needs one objective; a study "
                f"with {len(self.directions)} directions cannot prune (as in Optuna): drop "
                "it (hydra/sweeper/pruner=none)"
            )
        return pruner

    def _study(self, url: str, space: dict[str, BaseDistribution]) -> optuna.Study:
        study = optuna.create_study(
            storage=shared.open_storage(url),
            study_name=self.study_name,
            sampler=self._sampler(space),
            pruner=self._pruner(),
            directions=self.directions,
            load_if_exists=True,
        )
        made = [d.name.lower() for d in study.directions]
        if made != self.directions:
            raise UsageError(
                f"hydra.sweeper.direction=[{','.join(self.directions)}]: study "
                f"{self.study_name} in {url} was created to [{','.join(made)}]; use that or a "
                "new study_name"
            )
        return study

    def _claim(
        self, study: optuna.Study, space: dict[str, BaseDistribution], sweep_dir: Path
    ) -> dict[int, optuna.trial.Trial]:
        """Under the claim lock: up to ``n_jobs`` trials, queued ones (retries) first, never
        more than the study's ``n_trials`` in all."""
        assert self.lock is not None and self.heartbeat is not None
        with self.lock():
            trials = study.get_trials(deepcopy=False)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            new = max(0, self.n_trials - sum(shared.counts(t) for t in trials))
            batch = {}
            for _ in range(min(self.n_jobs, waiting + new)):
                trial = study.ask(space)  # a queued one (a retry) first
                if self.extend is not None:  # hydra.sweeper.custom_search_space
                    assert self.config is not None
                    self.extend(self.config, trial)
                trial.set_user_attr(shared.DIR, str((sweep_dir / str(trial.number)).resolve()))
                take_over(study, trial)  # a retry (another worker may have queued it)
                self.heartbeat.add(trial._trial_id)
                batch[trial.number] = trial
        return batch

    def _tell(self, study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn) -> bool:
        assert self.heartbeat is not None
        self.heartbeat.discard(trial._trial_id)
        return tell(study, trial, ret, len(self.directions))

    def _launch(
        self, study: optuna.Study, trials: dict[int, optuna.trial.Trial], fixed: list[str]
    ) -> list[JobReturn]:
        """Launch ``trials`` (by number; their dir is the sweep dir's ``<number>``), tell
        Optuna how each one ended, and stop when too many of them failed."""
        assert self.launcher is not None and self.heartbeat is not None
        returns: list[JobReturn] = []
        failed = 0
        try:
            for run in consecutive(sorted(trials)):
                overrides = [
                    [*fixed, *(f"{k}={override_value(v)}" for k, v in trials[n].params.items())]
                    for n in run
                ]
                self.validate_batch_is_legal(overrides)
                batch = self.launcher.launch(overrides, initial_job_idx=run[0])
                failed += sum(not self._tell(study, trials[n], ret) for n, ret in zip(run, batch))
                returns.extend(batch)
        except BaseException:  # Ctrl-C, a launcher error: a re-run takes these over at once
            for trial in trials.values():
                self.heartbeat.discard(trial._trial_id)
                with contextlib.suppress(UpdateFinishedTrialError):
                    study._storage.set_trial_system_attr(trial._trial_id, shared.HEARTBEAT, 0.0)
            raise
        results.check_failures(returns, failed, self.max_failure_rate)
        return returns

    def _prepare(self, sweep_dir: Path) -> None:
        """Directions, the custom search space, and multirun.yaml with the directions."""
        assert self.config is not None
        self.directions = resolve(self.direction, self.config)
        if self.custom_search_space:
            self.extend = custom_space(self.custom_search_space)
        with open_dict(self.config):
            one = len(self.directions) == 1
            self.config.hydra.sweeper.direction = (
                self.directions[0] if one else list(self.directions)
            )
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = search_space(self.params, arguments, parser)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._prepare(sweep_dir)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        url = self.storage or shared.default_storage(sweep_dir)
        self.lock = shared.ClaimLock(url, self.study_name)
        with self.lock():  # workers starting together would race to create the schema
            study = self._study(url, space)
        if not self.storage:  # each job opens the study itself: give it the resolved path
            fixed = [*fixed, f"hydra.sweeper.storage='{url}'"]
        done = len(study.trials)
        if done:
            log.info(f"study {self.study_name}: {done} of {self.n_trials} trials already run")
        self.heartbeat = shared.Heartbeat(study._storage, self.heartbeat_interval)
        try:
            returns = self._run(study, space, fixed, sweep_dir)
        finally:
            self.heartbeat.stop()
            self.lock.close()
        results.record(sweep_dir, study)
        results.write(sweep_dir, study)
        return returns

    def _run(
        self,
        study: optuna.Study,
        space: dict[str, BaseDistribution],
        fixed: list[str],
        sweep_dir: Path,
    ) -> list[JobReturn]:
        """Claim and launch trials until the study has ``n_trials``; then wait for the other
        workers' last ones."""
        returns: list[JobReturn] = []
        waited = False
        while True:
            shared.fail_stale(study, self.grace_period, self.max_retry)
            batch = self._claim(study, space, sweep_dir)
            if batch:
                returns += self._launch(study, batch, fixed)
                continue
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return returns
            if not waited:  # no barrier: only the study's last trials are waited for
                numbers = ", ".join(str(t.number) for t in running)
                log.info(f"waiting for trial(s) {numbers} of other workers")
                waited = True
            time.sleep(min(5.0, self.heartbeat_interval))
