"""The ``Run`` record the loop and callbacks share, and its methods: the loop's vocabulary
(batches, record, log figures, end of epoch, validate, test, save).

The parts are built once by ``dlx.engine.build.build_run``; the loop is ``dlx.engine.loop.fit``.
Callbacks are held through the ``Hooks`` protocol: ``dlx.callbacks`` names ``Run``, no cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dlx.augment import Augmenter
from dlx.data.base import DataInfo, DataModule
from dlx.engine import checkpoint, distributed
from dlx.engine.board import Progress, TensorBoard
from dlx.engine.distributed import Dist
from dlx.engine.evaluate import evaluate
from dlx.engine.hooks import Hooks
from dlx.engine.inputs import Inputs
from dlx.engine.meter import TrainMeter, epoch_metrics
from dlx.engine.monitor import metric
from dlx.engine.objective import Objective
from dlx.engine.optstats import read
from dlx.engine.perf import Throughput
from dlx.engine.signals import StopSignals
from dlx.engine.spec import RunSpec
from dlx.engine.state import (
    State,
    StepResult,
    StopRequest,
    maybe_test_kill,
    snapshot,
    test_kill_due,
)
from dlx.regularization import Regularization
from dlx.sched import Schedule
from dlx.trainer import TrainerConfig

#: one optimizer step: ``step(x, y, log)`` (``dlx.engine.step``)
Step = Callable[[Tensor, Tensor, bool], StepResult]


@dataclass
class Run:
    """Everything one run holds. Callbacks read it (and may set ``eval_model``)."""

    spec: RunSpec
    trainer: TrainerConfig
    ctx: Dist
    device: torch.device
    run_dir: Path
    data: DataModule
    regs: Regularization
    model: nn.Module  # the raw model: its parameters are trained, its weights checkpointed
    compiled: nn.Module  # ``model`` through torch.compile (``model`` itself without it)
    train_model: nn.Module  # what the step calls: compiled, in DDP with several ranks
    eval_model: nn.Module  # what validation evaluates (compiled; an EMA callback may swap it)
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    augment: Augmenter | None
    inputs: Inputs
    objective: Objective
    eval_objective: Objective  # val/test losses: plain, comparable across runs
    meter: TrainMeter
    autocast: Callable[[], AbstractContextManager[object]]
    steps_per_epoch: int
    batch_size: int  # samples per optimizer step, all ranks together
    signals: StopSignals
    board: TensorBoard
    progress: Progress
    callbacks: Hooks[Run]
    step: Step
    state: State = field(default_factory=State)
    resumed: bool = False
    stop_request: StopRequest | None = None
    tested: dict[str, float] = field(default_factory=dict)  # test/* of the best checkpoint
    epoch_lr: float = 0.0  # the lr of the epoch just finished (before an epoch-wise schedule)
    speed: Throughput = field(default_factory=Throughput)
    phase: str = "setup"  # train, validation or test: where a signal stopped the run
    writer: checkpoint.Writer = field(default_factory=checkpoint.Writer)
    best_at_step: int | None = None  # best.pt holds ``model``'s own weights of this step
    _window: tuple[float, int] = (0.0, 0)  # (clock, step) at the last log step
    _first_batch: int = 0  # where this process entered the epoch (a resume: mid-way)

    @property
    def cfg(self) -> Any:
        """The config resolved, as an OmegaConf node (users' callbacks; dlx reads ``spec``)."""
        from dlx.engine.rundirs import config_node

        return config_node(self.spec.config)

    @property
    def info(self) -> DataInfo:
        return self.data.info

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def request_stop(self, status: str, reason: str) -> None:
        """End training after this epoch (the first request wins; checkpoints keep it)."""
        if self.stop_request is None:
            self.stop_request, self.state.stop = StopRequest(status, reason), [str(status), reason]

    def agree_on_stop(self) -> None:
        """Under DDP, every rank takes rank 0's stop request (callbacks that run on rank 0
        alone may make one): one broadcast per epoch."""
        agreed = distributed.rank0_object(self.ctx, self.stop_request)
        if agreed is not None and self.stop_request is None:
            self.request_stop(agreed.status, agreed.reason)

    # --- the loop's vocabulary ---------------------------------------------------------------
    def start_epoch(self) -> None:
        self.phase = "train"
        self.train_model.train()
        if self.state.batch == 0:
            self.meter.reset()
        self._window = (time.perf_counter(), self.state.step)
        self._first_batch = self.state.batch
        self.speed.start()

    def train_batches(self, epoch: int) -> Iterator[tuple[int, Tensor, Tensor]]:
        """``(i, x, y)`` of epoch ``epoch`` from batch ``state.batch`` on: this rank's slice."""
        t = self.trainer
        batches = self.data.batches(
            "train",
            shuffle=True,
            seed=t.seed * 100_003 + epoch,
            drop_last=True,
            start=self.state.batch,
            batch_size=self.batch_size if t.accumulate_grad_batches > 1 else None,
        )
        rank, world = self.ctx.rank, self.ctx.world
        for i, (xb, yb) in enumerate(batches, start=self.state.batch):
            if i >= self.steps_per_epoch:
                return
            yield (i, xb[rank::world], yb[rank::world]) if world > 1 else (i, xb, yb)

    def is_log_step(self, i: int) -> bool:
        """Every ``log_every_n_steps`` steps; a run shorter than that logs its first epoch's
        last step."""
        every, step = self.trainer.log_every_n_steps, self.state.step + 1
        return step % every == 0 or (i + 1 == self.steps_per_epoch and step < every)

    def record(self, i: int, result: StepResult) -> None:
        """Count the step and hand its tensors to the meter (which syncs when too much waits)."""
        self.state.step += 1
        self.state.batch = i + 1
        if self.meter.record(
            self.state.step, result.total, result.loss, result.out, result.y, result.n
        ):
            self.sync()

    def sync(self) -> None:
        """Read the pending losses; raises ``Diverged`` (never save a non-finite step)."""
        self.meter.sync()
        self.state.last_finite_loss, self.state.skipped = self.meter.last_finite, self.meter.skipped

    def log_figures(self, result: StepResult) -> dict[str, float]:
        """A log step's scalars, read to the host in one transfer (a sync)."""
        self.sync()
        loss = distributed.all_mean(self.ctx, result.loss)
        scalars = read({"train/loss": loss, **result.logged})
        now, (then, step) = time.perf_counter(), self._window
        samples = (self.state.step - step) * self.batch_size
        scalars["perf/samples_per_s"] = samples / max(now - then, 1e-9)
        if self.trainer.on_nonfinite == "skip":
            scalars["train/skipped_steps"] = float(self.state.skipped)
        self._window = (now, self.state.step)
        return scalars

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Close the epoch: train figures, validation, rank 0's figures on every rank, the
        counters and best-so-far, the epoch-wise schedule. Returns the epoch's metrics."""
        self.sync()
        self.meter.count_stats()  # train work: inside the timed window
        self.speed.stop((self.state.batch - self._first_batch) * self.batch_size)
        self.signals.check()
        metrics = epoch_metrics(self.epoch_sums(), self.objective.summarise)
        metrics.update(self.validate())
        metrics = distributed.from_rank0(self.ctx, metrics, self.device)
        monitored = metric(metrics, self.trainer.monitor, "trainer.monitor")
        self.state.end_epoch(epoch, metrics, monitored, self.trainer.mode)
        self.epoch_lr = self.optimizer.param_groups[0]["lr"]  # the lr this epoch ended with
        self.schedule.step_epoch(monitored)
        return metrics

    @property
    def eval_batch(self) -> int:
        """Validation and test batches: ``trainer.eval_batch_size``, else 4x the training
        batch (inference keeps no activations for a backward pass)."""
        t = self.trainer
        return (
            t.eval_batch_size or 4 * self.batch_size // t.accumulate_grad_batches // self.ctx.world
        )

    def validate(self) -> dict[str, float]:
        self.phase = "validation"
        return evaluate(
            self.eval_model,
            self.data,
            "val",
            self.inputs,
            self.eval_objective,
            self.autocast,
            self.trainer.limit_val_batches,
            tta=self.trainer.tta,
            check_stop=self.signals.per_batch,
            batch_size=self.eval_batch,
        )

    def test(self) -> dict[str, float]:
        """The best checkpoint's figures on the test split."""
        self.writer.wait()
        self.phase = "test"
        if self.best_at_step != self.state.step:  # else the model is best.pt's already
            best = checkpoint.load(self.run_dir / "checkpoints" / "best.pt")
            self.model.load_state_dict(best["model"])
        return evaluate(
            self.compiled,
            self.data,
            "test",
            self.inputs,
            self.eval_objective,
            self.autocast,
            limit=1 if self.trainer.fast_dev_run else None,
            tta=self.trainer.tta,
            check_stop=self.signals.per_batch,
            batch_size=self.eval_batch,
        )

    # --- checkpoints ---------------------------------------------------------------------------
    def parts(self) -> dict[str, Any]:
        """What a checkpoint carries (each by its ``state_dict``): the parts, and every
        callback that keeps state."""
        parts: dict[str, Any] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "scaler": self.scaler,
            "augment": self.augment,
        }
        parts.update(self.callbacks.stateful())
        return parts

    def epoch_sums(self) -> dict[str, Tensor]:
        """The in-epoch sums of all ranks (a collective)."""
        return distributed.summed(self.ctx, self.meter.state_dict(), self.device)

    def save(
        self, name: str, weights: dict[str, Tensor] | None = None, copy_to: str | None = None
    ) -> None:
        """Write ``checkpoints/NAME`` of this moment (all ranks call it; rank 0 writes, in the
        background): ``weights`` in place of the model's (an EMA's), ``copy_to`` a 2nd name."""
        self.write(name, self.capture(weights), copy_to)
        if weights is None and "best.pt" in (name, copy_to):
            self.best_at_step = self.state.step

    def capture(
        self, weights: dict[str, Tensor] | None = None, hold: bool = False
    ) -> dict[str, Any] | None:
        """This moment's checkpoint (a collective under DDP; ``None`` on ranks other than 0).
        ``hold`` copies its tensors, so it can be written later while training goes on."""
        self.sync()
        summed = self.epoch_sums()
        if not self.ctx.main:
            return None
        ck = snapshot(self.parts(), self.state, summed, self.spec.config)
        if weights is not None:
            ck["model"] = weights
        return checkpoint.copied(ck) if hold else ck

    def write(self, name: str, ck: dict[str, Any] | None, copy_to: str | None = None) -> None:
        """Write ``capture``'s checkpoint as ``checkpoints/NAME`` (and ``copy_to``), rank 0."""
        if "best.pt" in (name, copy_to):
            self.best_at_step = None  # ``save`` says when it is the model as it is
        if ck is None:  # another rank
            return
        self.board.flush_on(self.writer)  # events up to this step reach disk first
        folder = self.run_dir / "checkpoints"
        self.writer.submit(folder / name, ck)
        names = [name]
        if copy_to is not None:
            self.writer.call(lambda: checkpoint.copy(folder / name, folder / copy_to))
            names.append(copy_to)
        if self.callbacks.wants("on_save") or any(test_kill_due(n, self.state.step) for n in names):
            self.writer.wait()  # the file is there for them
        for n in names:
            self.callbacks.on_save(self, n)
        if "last.pt" in names:
            maybe_test_kill(self.state.step)
