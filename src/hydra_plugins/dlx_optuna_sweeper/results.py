"""What the sweeper reads from a finished job and writes when the study ends.

A job returns one number per direction (``hydra.sweeper.direction``: one, or a list for a
multi-objective study: a tuple or list of numbers). The study's result goes to
``optimization_results.yaml`` in the sweep dir, in the published hydra-optuna-sweeper's format:
``name``, ``best_params``, ``best_value``; for several objectives ``solutions`` (the Pareto
front: each trial's ``params`` and ``values``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus

from dlx.errors import RunFailed, UsageError
from hydra_plugins.dlx_optuna_sweeper import study as shared

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

RESULTS = "optimization_results.yaml"
DIRECTIONS = ("minimize", "maximize")


def directions_of(direction: Any) -> list[str] | None:
    """``hydra.sweeper.direction`` as a list (None: not set); each one checked."""
    if direction is None:
        return None
    given = [direction] if isinstance(direction, str) else list(direction)
    names = [getattr(d, "name", d) for d in given]  # an Enum, as the official config has
    for d in names:
        if d not in DIRECTIONS:
            raise UsageError(
                f"hydra.sweeper.direction={direction}: choose maximize or minimize, a list of "
                "them for several objectives, or null (follow trainer.monitor)"
            )
    if not names:
        raise UsageError("hydra.sweeper.direction=[]: name at least one direction")
    return [str(d) for d in names]


def values_of(ret: JobReturn, n: int) -> list[float] | None:
    """A finished job's ``n`` objective values, or None when the job failed or returned no
    ``n`` finite numbers (a failed or diverged dlx run returns None)."""
    if ret.status != JobStatus.COMPLETED:
        return None
    value = ret._return_value
    if n == 1 and not (isinstance(value, Sequence) and not isinstance(value, str)):
        value = [value]  # one objective: a number (or a list of one)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        if ret._return_value is not None:
            log.warning(f"job returned {ret._return_value!r}: expected {n} number(s); failed")
        return None
    try:
        floats = [float(v) for v in value]
    except (TypeError, ValueError):
        log.warning(f"job returned {ret._return_value!r}: not numbers; failed")
        return None
    return floats if all(math.isfinite(v) for v in floats) else None


def check_failures(returns: list[JobReturn], failed: int, max_failure_rate: float) -> None:
    """Stop the sweep when more than ``max_failure_rate`` of a batch failed: raise the first
    failed job's own exception (as the published plugin does), else say so on one line."""
    if not returns or failed / len(returns) <= max_failure_rate:
        return
    log.error(
        f"{failed} of {len(returns)} trials failed, more than "
        f"hydra.sweeper.max_failure_rate={max_failure_rate}"
    )
    for ret in returns:
        if ret.status == JobStatus.FAILED:
            ret.return_value  # noqa: B018 (re-raises the job's exception with its traceback)
    raise RunFailed(
        f"sweep stopped: {failed} of {len(returns)} trials of a batch failed "
        f"(hydra.sweeper.max_failure_rate={max_failure_rate})"
    )


def summary(study: optuna.Study) -> dict[str, Any] | None:
    """The study's result in the published plugin's format; None before any trial completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    if len(study.directions) == 1:
        best = study.best_trial
        return {"name": "optuna", "best_params": best.params, "best_value": best.value}
    front = sorted(study.best_trials, key=lambda t: t.number)
    return {
        "name": "optuna",
        "solutions": [{"params": t.params, "values": t.values} for t in front],
    }


def write(sweep_dir: Path, study: optuna.Study) -> None:
    """``optimization_results.yaml`` in the sweep dir (nothing when no trial completed)."""
    from omegaconf import OmegaConf

    result = summary(study)
    if result is None:
        log.warning("no trial completed: no optimization_results.yaml")
        return
    OmegaConf.save(OmegaConf.create(result), Path(sweep_dir) / RESULTS)
    if "best_value" in result:
        log.info(f"best value {result['best_value']} with {result['best_params']}")
    else:
        log.info(f"Pareto front of {len(result['solutions'])} trial(s)")


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
