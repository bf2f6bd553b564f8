"""The callbacks every run gets, by what its config asks for, in hook order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.callbacks.board import TensorBoardLogger
from dlx.callbacks.checkpointing import Checkpointing
from dlx.callbacks.csvlog import MetricsCSV
from dlx.callbacks.early_stopping import EarlyStop
from dlx.callbacks.fast_dev_run import FastDevRun
from dlx.callbacks.profiler import Profiler
from dlx.callbacks.progress import ProgressBar
from dlx.callbacks.pruning import pruning_callback
from dlx.errors import UsageError

if TYPE_CHECKING:
    from dlx.core import Run


def default_callbacks(
    run: Run, user: list[Callback] | None = None, quiet: bool = False
) -> list[Callback]:
    """TensorBoard, the progress bar, the profiler and early stopping when asked for, the
    user's own (``trainer.callbacks``), then checkpointing, last: the files it writes carry
    every other callback's state after its epoch-end work."""
    t = run.trainer
    callbacks: list[Callback] = [TensorBoardLogger(), MetricsCSV(), ProgressBar(table=not quiet)]
    if t.fast_dev_run:
        callbacks.append(FastDevRun())
    if t.profile:
        callbacks.append(Profiler())
    if run.regs.early_stopping is not None:
        callbacks.append(EarlyStop(run.regs.early_stopping))
    callbacks += filter(None, [pruning_callback(run)])  # a trial of dlx's Optuna sweeper
    callbacks += user or []
    callbacks.append(Checkpointing(t.checkpoint_every_n_steps))
    return callbacks


def user_callback(spec: Any, i: int) -> Callback:
    """``trainer.callbacks[i]``: a dotted class path (called without arguments) or a Hydra
    node with ``_target_``."""
    from hydra.utils import get_class, instantiate

    key = f"trainer.callbacks[{i}]"
    try:
        obj = instantiate(spec) if isinstance(spec, dict) else get_class(str(spec))()
    except Exception as e:
        raise UsageError(f"{key}={spec}: cannot be built ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, Callback):
        raise UsageError(f"{key}={spec}: not a dlx.callbacks.Callback subclass")
    return obj
