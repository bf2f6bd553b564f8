"""The study's directions: ``hydra.sweeper.direction`` (one, or a list for several
objectives) checked against what the trials return.

Any Hydra app: the direction as given, ``minimize`` when unset (the published plugin's
default). dlx's own app (its root config has the ``dlx_sweep`` callback): unset, it follows
``trainer.monitor`` (minimise losses, maximise accuracies) or, with ``trainer.objectives``,
each objective's own rule (costs minimised); set, there is one direction per objective.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlx.errors import UsageError
from hydra_plugins.dlx_optuna_sweeper.results import directions_of

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
        return directions_of(direction)[0]  # type: ignore[index]
    return MODES[resolve_mode(monitor, mode or "auto")]


def is_dlx(cfg: DictConfig) -> bool:
    """Whether ``cfg`` is dlx's own app (the sweep callback of its root config)."""
    return OmegaConf.select(cfg, "hydra.callbacks.dlx_sweep", default=None) is not None


def objectives(cfg: DictConfig) -> list[str]:
    """``trainer.objectives`` of a dlx config, checked ([]: the monitored metric alone)."""
    from dlx.sweep.objectives import check

    names = [str(n) for n in (OmegaConf.select(cfg, "trainer.objectives", default=None) or [])]
    check(names)
    return names


def resolve(direction: Any, cfg: DictConfig) -> list[str]:
    """The study's directions, one per value a trial returns."""
    given = directions_of(direction)
    if not is_dlx(cfg):
        return given or ["minimize"]
    trainer = cfg.get("trainer") or {}
    names = objectives(cfg)
    if not names:
        if given is not None and len(given) > 1:
            raise UsageError(
                f"hydra.sweeper.direction=[{','.join(given)}]: {len(given)} directions but one "
                "objective; name them, e.g. trainer.objectives=[val/acc,params]"
            )
        return [direction_for(given[0] if given else None, _monitor(cfg), trainer.get("mode"))]
    if given is None:
        from dlx.sweep.objectives import direction as rule

        monitor = _monitor(cfg)
        return [rule(n, monitor, trainer.get("mode")) for n in names]
    if len(given) != len(names):
        raise UsageError(
            f"hydra.sweeper.direction=[{','.join(given)}]: {len(given)} direction(s) for "
            f"{len(names)} objective(s) (trainer.objectives=[{','.join(names)}]); give one each"
        )
    return given
