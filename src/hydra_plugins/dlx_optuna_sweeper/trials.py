"""One trial's life in the sweep: batches of consecutive numbers for the launcher, a dead
worker's trial taken over from its ``last.pt``, and the end told to Optuna."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from dlx.status import Status
from hydra_plugins.dlx_optuna_sweeper import results
from hydra_plugins.dlx_optuna_sweeper import study as shared

log = logging.getLogger(__name__)


def consecutive(numbers: list[int]) -> list[list[int]]:
    """``[3, 4, 7, 8, 9]`` -> ``[[3, 4], [7, 8, 9]]``: runs the launcher can take at once."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][-1] + 1 == n:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


def take_over(study: optuna.Study, trial: optuna.trial.Trial) -> None:
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


def tell(study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn, n_values: int) -> bool:
    """The trial's end, as its job left it: pruned, its values, or failed; False when
    it failed."""
    frozen = study._storage.get_trial(trial._trial_id)
    values = results.values_of(ret, n_values)
    if frozen.state.is_finished():  # failed meanwhile by a worker that thought us dead
        return values is not None
    try:
        if frozen.user_attrs.get(shared.STATUS) == Status.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        elif values is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, values)
    except UpdateFinishedTrialError:
        pass
    except RuntimeError as e:  # the grid sampler stops the study at its last point
        if "Study.stop" not in str(e):
            raise
    return values is not None or frozen.user_attrs.get(shared.STATUS) == Status.PRUNED
