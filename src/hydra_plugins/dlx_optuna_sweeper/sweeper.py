"""The ``dlx_optuna`` Hydra sweeper: asks Optuna for ``n_jobs`` trials at a time, launches
them through Hydra's launcher (basic, joblib, submitit) and tells Optuna their objective.

A trial whose job fails, or whose task returns no finite objective (failed or diverged run),
is told as failed and the sweep goes on; one its pruner stopped is told as pruned. The study
is stored in SQLite inside the sweep dir by default; running the same command again resumes
it. Several workers (``dlx train -m`` processes, on one machine or many) started with the same
``storage`` and ``study_name`` share the study: ``n_trials`` counts every worker's trials, each
worker claims its next trial as soon as it is free, and a dead worker's trial is failed after
``grace_period`` seconds without its heartbeat and queued again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
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
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from dlx.errors import UsageError
from hydra_plugins.dlx_optuna_sweeper import study as shared

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


MODES = {"min": "minimize", "max": "maximize"}


def _monitor(cfg: DictConfig) -> str:
    """What the trials will monitor: ``trainer.monitor``, or its task's when left at the
    default (an autoencoder minimises ``val/mse``)."""
    from dlx.engine.objective import planned_monitor

    try:
        return planned_monitor(cfg)
    except (KeyError, AttributeError):  # no model/data/trainer node: the plain rule
        return str((cfg.get("trainer") or {}).get("monitor", "val/acc"))


def direction_for(direction: str | None, monitor: str, mode: str | None = None) -> str:
    """``hydra.sweeper.direction`` when set; else the best.pt rule of the trials themselves
    (``trainer.mode``, whose ``auto`` minimises losses and errors and maximises the rest)."""
    from dlx.engine.monitor import resolve_mode

    if direction is not None:
        if direction not in MODES.values():
            raise UsageError(
                f"hydra.sweeper.direction={direction}: choose maximize, minimize or null "
                "(follow trainer.monitor)"
            )
        return direction
    return MODES[resolve_mode(monitor, mode or "auto")]


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
        pruner: Any = None,
        direction: str | None = None,
        storage: str | None = None,
        study_name: str = "dlx",
        n_trials: int = 20,
        n_jobs: int = 1,
        heartbeat_interval: int = 10,
        grace_period: int = 60,
        max_retry: int = 1,
        params: dict[str, str] | None = None,
    ) -> None:
        self.sampler_cfg = sampler
        self.pruner_cfg = pruner
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = max(1, n_jobs)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retry = max_retry
        self.params = dict(params) if params else None
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None
        self.lock: shared.ClaimLock | None = None  # both set up by sweep()
        self.heartbeat: shared.Heartbeat | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # --- the study ------------------------------------------------------------------------
    def _sampler(self, space: dict[str, BaseDistribution]) -> Any:
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
        return instantiate(self.sampler_cfg, **kwargs) if self.sampler_cfg else None

    def _study(self, url: str, space: dict[str, BaseDistribution], direction: str) -> optuna.Study:
        study = optuna.create_study(
            storage=shared.open_storage(url),
            study_name=self.study_name,
            sampler=self._sampler(space),
            pruner=shared.build_pruner(self.pruner_cfg),
            direction=direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != direction:
            raise UsageError(
                f"hydra.sweeper.direction={direction}: study {self.study_name} in {url} "
                f"was created to {study.direction.name.lower()}; use that or a new study_name"
            )
        return study

    def _claim(
        self, study: optuna.Study, space: dict[str, BaseDistribution], sweep_dir: Path
    ) -> dict[int, optuna.trial.Trial]:
        """Under the claim lock: up to ``n_jobs`` trials, queued ones (retries) first, never
        more than the study's ``n_trials`` in all."""
        with self.lock():
            trials = study.get_trials(deepcopy=False)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            new = max(0, self.n_trials - sum(shared.counts(t) for t in trials))
            batch = {}
            for _ in range(min(self.n_jobs, waiting + new)):
                trial = study.ask(space)
                trial.set_user_attr(shared.DIR, str((sweep_dir / str(trial.number)).resolve()))
                self.heartbeat.add(trial._trial_id)
                batch[trial.number] = trial
        return batch

    def _tell(self, study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn) -> None:
        """The trial's end, as its job left it: pruned, a value, or failed."""
        self.heartbeat.discard(trial._trial_id)
        frozen = study._storage.get_trial(trial._trial_id)
        if frozen.state.is_finished():  # failed meanwhile by a worker that thought us dead
            return
        value = objective_of(ret)
        try:
            if frozen.user_attrs.get(shared.STATUS) == "pruned":
                study.tell(trial, state=TrialState.PRUNED)
            elif value is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
        except UpdateFinishedTrialError:
            pass

    def _launch(
        self, study: optuna.Study, trials: dict[int, optuna.trial.Trial], fixed: list[str]
    ) -> list[JobReturn]:
        """Launch ``trials`` (by number; their dir is the sweep dir's ``<number>``) and tell
        Optuna how each one ended."""
        assert self.launcher is not None
        returns: list[JobReturn] = []
        for trial in trials.values():
            self._take_over(study, trial)
        try:
            for run in consecutive(sorted(trials)):
                overrides = [
                    [*fixed, *(f"{k}={v}" for k, v in trials[n].params.items())] for n in run
                ]
                self.validate_batch_is_legal(overrides)
                results = self.launcher.launch(overrides, initial_job_idx=run[0])
                for n, ret in zip(run, results):
                    self._tell(study, trials[n], ret)
                returns.extend(results)
        except BaseException:  # Ctrl-C, a launcher error: a re-run takes these over at once
            for trial in trials.values():
                self.heartbeat.discard(trial._trial_id)
                with contextlib.suppress(UpdateFinishedTrialError):
                    study._storage.set_trial_system_attr(trial._trial_id, shared.HEARTBEAT, 0.0)
            raise
        return returns

    def _take_over(self, study: optuna.Study, trial: optuna.trial.Trial) -> None:
        """A retry of a dead worker's trial continues from its ``last.pt``: the old run dir,
        where this machine sees it, becomes the retry's (``<sweep dir>/<new number>``)."""
        frozen = study._storage.get_trial(trial._trial_id)
        old_number = frozen.system_attrs.get(shared.RETRY_OF)
        if old_number is None:
            return
        old = study.trials[old_number].user_attrs.get(shared.DIR)
        new = Path(frozen.user_attrs[shared.DIR])
        if old and (Path(old) / "checkpoints" / "last.pt").is_file() and not new.exists():
            Path(old).rename(new)
            log.info(f"trial {trial.number}: continues trial {old_number} from its last.pt")

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = search_space(self.params, arguments, parser)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        trainer = self.config.get("trainer") or {}
        direction = direction_for(self.direction, _monitor(self.config), trainer.get("mode"))
        with open_dict(self.config):
            self.config.hydra.sweeper.direction = direction
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        url = self.storage or shared.default_storage(sweep_dir)
        self.lock = shared.ClaimLock(url, self.study_name)
        with self.lock():  # workers starting together would race to create the schema
            study = self._study(url, space, direction)
        if not self.storage:  # each job opens the study itself: give it the resolved path
            fixed = [*fixed, f"hydra.sweeper.storage='{url}'"]
        done = len(study.trials)
        if done:
            log.info(f"study {self.study_name}: {done} of {self.n_trials} trials already run")
        self.heartbeat = shared.Heartbeat(study._storage, self.heartbeat_interval)
        returns: list[JobReturn] = []
        waited = False
        try:
            while True:
                shared.fail_stale(study, self.grace_period, self.max_retry)
                batch = self._claim(study, space, sweep_dir)
                if batch:
                    returns += self._launch(study, batch, fixed)
                    continue
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not running:
                    break
                if not waited:  # no barrier: only the study's last trials are waited for
                    numbers = ", ".join(str(t.number) for t in running)
                    log.info(f"waiting for trial(s) {numbers} of other workers")
                    waited = True
                time.sleep(min(5.0, self.heartbeat_interval))
        finally:
            self.heartbeat.stop()
            self.lock.close()
        record(sweep_dir, study)
        return returns


def record(sweep_dir: Path, study: optuna.Study) -> None:
    """``study.json`` in the sweep dir: every trial of the study with its run dir and state,
    so the sweep's ``sweep.json`` and leaderboard cover the trials other workers ran."""
    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "dir": t.user_attrs.get(shared.DIR),
            "params": t.params,
            "retried": bool(t.system_attrs.get(shared.RETRIED)),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    text = json.dumps({"study_name": study.study_name, "trials": trials}, indent=1)
    tmp = sweep_dir / f".study.json.{os.getpid()}"  # workers sharing a sweep dir: atomic
    tmp.write_text(text)
    tmp.replace(sweep_dir / "study.json")
