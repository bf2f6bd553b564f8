"""The callbacks every run gets, by what its config asks for, in hook order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.callbacks import Callback
from dlx.callbacks.averaging import EMAWeights, SWAWeights
from dlx.callbacks.board import TensorBoardLogger
from dlx.callbacks.checkpointing import Checkpointing
from dlx.callbacks.csvlog import MetricsCSV
from dlx.callbacks.early_stopping import EarlyStop
from dlx.callbacks.fast_dev_run import FastDevRun
from dlx.callbacks.grad_norms import GradNorms
from dlx.callbacks.profiler import Profiler
from dlx.callbacks.progress import ProgressBar
from dlx.callbacks.provenance import Provenance
from dlx.callbacks.pruning import pruning_callback
from dlx.callbacks.reconstruction import ReconstructionImages
from dlx.callbacks.sparsity import WeightSparsity
from dlx.callbacks.top_k import TopK

if TYPE_CHECKING:
    from dlx.engine.run import Run

#: callbacks a task brings along (by ``Objective.task``)
TASK_CALLBACKS: dict[str, tuple[type[Callback], ...]] = {
    "reconstruction": (ReconstructionImages,),
}


def default_callbacks(
    run: Run, user: list[Callback] | None = None, quiet: bool = False
) -> list[Callback]:
    """Provenance, TensorBoard, the per-layer gradient norms when asked for (their epoch
    means join the epoch's metrics after TensorBoard has its own points), metrics.csv, the
    progress bar, the task's own (an autoencoder's reconstruction images), fast_dev_run,
    the profiler, early stopping and weight averaging (EMA, SWA) when asked for, the user's
    own (``trainer.callbacks``), the top-k checkpoints (after EMA: they keep the weights
    evaluated), then checkpointing, last: the files it writes carry every other callback's
    state after its epoch-end work."""
    t, regs = run.trainer, run.regs
    callbacks: list[Callback] = [
        Provenance(),
        TensorBoardLogger(),
        *([GradNorms()] if t.log_grad_norms else []),
        *([WeightSparsity(t.log_weight_sparsity)] if t.log_weight_sparsity else []),
        MetricsCSV(),
        ProgressBar(table=not quiet),
        *(cls() for cls in TASK_CALLBACKS.get(run.objective.task, ())),
    ]
    if t.fast_dev_run:
        callbacks.append(FastDevRun())
    if t.profile:
        callbacks.append(Profiler())
    if regs.early_stopping is not None:
        callbacks.append(EarlyStop(regs.early_stopping))
    if regs.ema is not None:
        callbacks.append(EMAWeights(run, regs.ema))
    if regs.swa is not None:
        callbacks.append(SWAWeights(run, regs.swa))
    callbacks += filter(None, [pruning_callback(run)])  # a trial of dlx's Optuna sweeper
    callbacks += user or []
    if t.save_top_k:
        callbacks.append(TopK(t.save_top_k, t.monitor, t.mode))
    callbacks.append(Checkpointing(t.checkpoint_every_n_steps, t.checkpoint_interval_s))
    return callbacks
