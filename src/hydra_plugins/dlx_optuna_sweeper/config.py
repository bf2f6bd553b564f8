"""Structured configs of the ``dlx_optuna`` sweeper and its samplers, registered in Hydra's
ConfigStore as ``hydra/sweeper=dlx_optuna`` and ``hydra/sweeper/sampler=<name>``.

The interface follows the published hydra-optuna-sweeper (``n_trials``, ``n_jobs``,
``direction``, ``storage``, ``study_name``, ``params``, ``sampler``), on Optuna 4/5.
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
    multivariate: bool = False


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


SAMPLERS: dict[str, type] = {
    "random": RandomSamplerConfig,
    "tpe": TPESamplerConfig,
    "grid": GridSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "qmc": QMCSamplerConfig,
}


@dataclass
class DlxOptunaSweeperConf:
    """``hydra.sweeper.*`` of ``hydra/sweeper=dlx_optuna``."""

    _target_: str = "hydra_plugins.dlx_optuna_sweeper.sweeper.DlxOptunaSweeper"
    _recursive_: bool = False  # the sweeper builds the sampler (grid needs the search space)
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}])
    sampler: Any = None
    #: maximize or minimize the objective the task returns (the best monitored val metric)
    direction: str = "maximize"
    #: an Optuna storage URL; null: sqlite:///<sweep dir>/optuna.db (a re-run resumes it)
    storage: Optional[str] = None
    study_name: str = "dlx"
    #: trials in all, counting those a previous run of the same sweep finished
    n_trials: int = 20
    #: trials launched at once per batch (give the launcher as many workers)
    n_jobs: int = 1
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


register()
