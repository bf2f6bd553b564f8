"""Structured configs of the ``dlx_optuna`` sweeper and its samplers, registered in Hydra's
ConfigStore as ``hydra/sweeper=dlx_optuna`` and ``hydra/sweeper/sampler=<name>``.

The interface follows the published hydra-optuna-sweeper (``n_trials``, ``n_jobs``,
``direction``, ``storage``, ``study_name``, ``params``, ``sampler``), on Optuna 4/5, plus
``max_failure_rate``, ``custom_search_space``, several directions, ``pruner``
(``hydra/sweeper/pruner=<name>``) and the heartbeat of shared studies.
"""

# OmegaConf 2.3 reads typing.Optional/List/Dict in structured configs, not PEP 604 unions.
# ruff: noqa: UP006, UP045
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class TPESamplerConfig(SamplerConfig):
    """Tree-structured Parzen estimator; random for the first ``n_startup_trials``."""

    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 5
    n_ei_candidates: int = 24
    multivariate: bool = False
    # the published plugin's keys, deprecated since Optuna 4.9: null leaves Optuna's default
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None


@dataclass
class MOTPESamplerConfig(TPESamplerConfig):
    """``motpe`` of the published plugin: Optuna 4 removed MOTPESampler, its TPE sampler
    handles several objectives itself."""

    n_startup_trials: int = 10


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    """NSGA-II, the genetic multi-objective sampler: generations of ``population_size``."""

    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class GridSamplerConfig:
    """Every combination of the ``choice``/``range`` params (set ``n_trials`` to the product)."""

    _target_: str = "optuna.samplers.GridSampler"
    search_space: Any = None  # filled by the sweeper from ``params``
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    n_startup_trials: int = 1


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = True


@dataclass
class PrunerConfig:
    """Optuna's pruners; the trial reports ``trainer.monitor`` at every epoch end (the step
    is the epoch, 1-based), so warm-up and resource counts are in epochs."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig(PrunerConfig):
    """Stop a trial whose value is worse than the median of earlier trials at that epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConfig(MedianPrunerConfig):
    """Stop a trial outside the best ``percentile`` percent of earlier trials at that epoch."""

    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0


@dataclass
class SuccessiveHalvingPrunerConfig(PrunerConfig):
    """Asynchronous successive halving (ASHA): rungs at ``min_resource * rf**k`` epochs."""

    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    """Hyperband: several successive-halving brackets over ``min_resource..max_resource``."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


PRUNERS: dict[str, type] = {
    "none": PrunerConfig,
    "median": MedianPrunerConfig,
    "percentile": PercentilePrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
}

SAMPLERS: dict[str, type] = {
    "random": RandomSamplerConfig,
    "tpe": TPESamplerConfig,
    "motpe": MOTPESamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "grid": GridSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "qmc": QMCSamplerConfig,
}


@dataclass
class DlxOptunaSweeperConf:
    """``hydra.sweeper.*`` of ``hydra/sweeper=dlx_optuna``."""

    _target_: str = "hydra_plugins.dlx_optuna_sweeper.sweeper.DlxOptunaSweeper"
    _recursive_: bool = False  # the sweeper builds the sampler (grid needs the search space)
    defaults: List[Any] = field(
        default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": "none"}]
    )
    sampler: Any = None
    #: hydra/sweeper/pruner=NAME (its keys under hydra.sweeper.pruner.), or the name alone
    pruner: Any = None
    #: maximize or minimize the objective (the best monitored val metric), or a list of them,
    #: one per objective (trainer.objectives; another app returns a tuple); null: dlx follows
    #: trainer.mode, else each metric (minimize */loss and costs, maximize */acc); another
    #: app minimizes
    direction: Any = None
    #: an Optuna storage URL: sqlite:///…, postgresql://…, journal:///ABS/PATH/study.log;
    #: null: journal:///<sweep dir>/optuna.log (a re-run resumes it; an optuna.db left by an
    #: older dlx is kept)
    storage: Optional[str] = None
    #: workers started with the same storage and study name share the study
    study_name: Optional[str] = "dlx"
    #: trials in the study in all, counting every worker's and those a previous run finished
    n_trials: int = 20
    #: trials launched at once per batch (give the launcher as many workers)
    n_jobs: int = 1
    #: seconds between a worker's heartbeats for its running trials
    heartbeat_interval: int = 10
    #: a running trial without a heartbeat for this long is failed (its worker died)
    grace_period: int = 60
    #: times a trial failed that way is run again (as a new trial, same params)
    max_retry: int = 1
    #: stop the sweep when more than this fraction of a batch of n_jobs trials failed
    #: (raised, or returned no finite value); 1.0: never (the published plugin's default is 0)
    max_failure_rate: float = 1.0
    #: module.function(cfg, trial) that suggests more params after those of ``params``
    custom_search_space: Optional[str] = None
    #: search space: key -> Hydra sweep syntax (choice, range, interval, tag(log, ...))
    params: Optional[Dict[str, str]] = None


def register() -> None:
    """Register the sweeper and its samplers with Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(
        group="hydra/sweeper",
        name="dlx_optuna",
        node=DlxOptunaSweeperConf,
        provider="dlx_optuna_sweeper",
    )
    for name, node in SAMPLERS.items():
        cs.store(
            group="hydra/sweeper/sampler",
            name=name,
            node=node,
            package="hydra.sweeper.sampler",
            provider="dlx_optuna_sweeper",
        )
    for name, node in PRUNERS.items():
        cs.store(
            group="hydra/sweeper/pruner",
            name=name,
            node=node,
            package="hydra.sweeper.pruner",
            provider="dlx_optuna_sweeper",
        )


register()
