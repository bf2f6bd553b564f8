"""A run's parts, built once from the config: the ``Run`` record the loop and callbacks share.

``build_run`` is the set-up: data, regularizers, model (compiled, wrapped for DDP), optimizer,
schedule, scaler, augmentation, objective, meter, the step, the callbacks, then the resume of
everything a checkpoint carries. ``Run``'s methods are the loop's vocabulary (batches, record,
log figures, end of epoch, save, test); the loop itself is ``dlx.engine.loop.fit``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from dlx.augment import Augmenter, split_augment
from dlx.callbacks.builtin import default_callbacks
from dlx.callbacks.hooks import CallbackList
from dlx.callbacks.user import user_callback
from dlx.data import build_data
from dlx.data.base import DataInfo, DataModule
from dlx.data.overfit import OverfitData
from dlx.engine import checkpoint, distributed
from dlx.engine.board import NullBoard, Progress, TensorBoard
from dlx.engine.device import autocast_for, compile_model, seed_everything
from dlx.engine.distributed import Dist
from dlx.engine.evaluate import evaluate
from dlx.engine.inputs import Inputs
from dlx.engine.meter import TrainMeter, epoch_metrics
from dlx.engine.monitor import resolve_mode
from dlx.engine.objective import Objective, build_objective, followed_monitor, task_of
from dlx.engine.optstats import read
from dlx.engine.perf import Throughput
from dlx.engine.resume import resume_run
from dlx.engine.signals import StopSignals
from dlx.engine.state import State, StopRequest, maybe_test_kill, snapshot, test_kill_due
from dlx.engine.step import STEPS, PlainStep, StepResult
from dlx.engine.syncbn import has_batchnorm, sync_batchnorm
from dlx.errors import UsageError
from dlx.models import build_model
from dlx.optim import build_optimizer
from dlx.regularization import Regularization
from dlx.sched import Schedule, build_schedule
from dlx.suggest import allowed
from dlx.trainer import TrainerConfig


@dataclass
class Run:
    """Everything one run holds. Callbacks read it (and may set ``eval_model``)."""

    cfg: DictConfig
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
    state: State = field(default_factory=State)
    callbacks: CallbackList = field(default_factory=lambda: CallbackList([]))
    step: PlainStep | None = None
    resumed: bool = False
    stop_request: StopRequest | None = None
    tested: dict[str, float] = field(default_factory=dict)  # test/* of the best checkpoint
    epoch_lr: float = 0.0  # the lr of the epoch just finished (before an epoch-wise schedule)
    speed: Throughput = field(default_factory=Throughput)
    writer: checkpoint.Writer = field(default_factory=checkpoint.Writer)
    config: dict[str, Any] = field(default_factory=dict)  # cfg resolved, as checkpoints keep it
    _window: tuple[float, int] = (0.0, 0)  # (clock, step) at the last log step
    _first_batch: int = 0  # where this process entered the epoch (a resume: mid-way)

    @property
    def info(self) -> DataInfo:
        return self.data.info

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def request_stop(self, status: str, reason: str) -> None:
        """End training after this epoch (the first request wins; checkpoints keep it)."""
        if self.stop_request is None:
            self.stop_request, self.state.stop = StopRequest(status, reason), [status, reason]

    def agree_on_stop(self) -> None:
        """Under DDP, every rank takes rank 0's stop request (callbacks that run on rank 0
        alone may make one): one broadcast per epoch."""
        agreed = distributed.rank0_object(self.ctx, self.stop_request)
        if agreed is not None and self.stop_request is None:
            self.request_stop(agreed.status, agreed.reason)

    # --- the loop's vocabulary ---------------------------------------------------------------
    def start_epoch(self) -> None:
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
        sums = self.meter.state_dict()
        if self.ctx.enabled:
            flat = torch.cat([v.double().reshape(-1) for v in sums.values()]).to(self.device)
            distributed.all_sum(self.ctx, flat)
            parts = flat.cpu().split([v.numel() for v in sums.values()])
            sums = {k: p.reshape(sums[k].shape).to(sums[k].dtype) for k, p in zip(sums, parts)}
        return sums

    def save(
        self, name: str, weights: dict[str, Tensor] | None = None, copy_to: str | None = None
    ) -> None:
        """Write ``checkpoints/NAME`` of this moment (all ranks call it; rank 0 writes, in the
        background): ``weights`` in place of the model's (an EMA's), ``copy_to`` a 2nd name."""
        self.write(name, self.capture(weights), copy_to)

    def capture(
        self, weights: dict[str, Tensor] | None = None, hold: bool = False
    ) -> dict[str, Any] | None:
        """This moment's checkpoint (a collective under DDP; ``None`` on ranks other than 0).
        ``hold`` copies its tensors, so it can be written later while training goes on."""
        self.sync()
        summed = self.epoch_sums()
        if not self.ctx.main:
            return None
        ck = snapshot(self.parts(), self.state, summed, self.config)
        if weights is not None:
            ck["model"] = weights
        return checkpoint.copied(ck) if hold else ck

    def write(self, name: str, ck: dict[str, Any] | None, copy_to: str | None = None) -> None:
        """Write ``capture``'s checkpoint as ``checkpoints/NAME`` (and ``copy_to``), rank 0."""
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


def metric(metrics: dict[str, float], name: str, key: str) -> float:
    """``metrics[name]``, or a usage error naming ``key`` and what it may watch."""
    if name not in metrics:
        raise UsageError(f"{key}={name}: unknown metric; {allowed(name, metrics)}")
    return metrics[name]


def build_run(
    cfg: DictConfig,
    trainer: TrainerConfig,
    ctx: Dist,
    device: torch.device,
    run_dir: Path,
    batch_size: int,
    resume: bool,
    quiet: bool = False,
) -> Run:
    """Every part of the run ``cfg`` describes, on ``device``, resumed from ``last.pt`` when
    ``resume`` and it exists. Opens the TensorBoard writer (closed by ``Run.board.close``)."""
    seed_everything(trainer.seed, trainer.deterministic)
    data = build_data(cfg.data, device)
    info = data.info
    regs = Regularization(cfg.get("regularization"))
    model = build_model(regs.model_config(cfg.model), info).to(device)
    sync_bn = ctx.enabled and trainer.sync_batchnorm and has_batchnorm(model)
    model = sync_batchnorm(model, device) if sync_bn else model
    if trainer.channels_last and info.kind == "image":
        model = model.to(memory_format=torch.channels_last)
    regs.attach(model)
    compiled = compile_model(model, trainer.compile, trainer.compile_mode)
    train_model = distributed.wrap(compiled, ctx, device)
    optimizer = build_optimizer(cfg.optim, model)
    data = OverfitData(data, trainer.overfit_batches) if trainer.overfit_batches else data
    steps = data.num_batches("train", drop_last=True) // trainer.accumulate_grad_batches
    steps = min(steps, trainer.limit_train_batches or steps)
    if steps == 0:
        raise UsageError(
            f"trainer.accumulate_grad_batches={trainer.accumulate_grad_batches}: more than "
            f"the {data.num_batches('train', drop_last=True)} training batches of an epoch"
        )
    schedule = build_schedule(cfg.sched, optimizer, steps, trainer.max_epochs, mode=trainer.mode)
    if (cfg.get("augment") or trainer.tta != "none") and info.kind != "image":
        raise UsageError(
            f"augment, trainer.tta: data={info.name} is a sequence task; "
            "use augment=none trainer.tta=none"
        )
    task = task_of(model, info)
    objective = build_objective(info, task, label_smoothing=regs.label_smoothing)
    objective.check_options(task, list(cfg.get("augment") or []), trainer.tta)
    aug_seed = trainer.seed + 1_000_003 * ctx.rank  # ranks draw different augmentations
    # per-sample transforms in a DataLoader's workers would reach the target too: a task
    # whose target is the image augments on the device, where the target is taken apart
    per_sample = hasattr(data, "train_transform") and objective.augments is None
    augment_node = None if trainer.overfit_batches else cfg.get("augment")
    augment, sample_transform = split_augment(
        augment_node, info, device, aug_seed, per_sample=per_sample
    )
    if per_sample:
        data.train_transform = sample_transform  # type: ignore[attr-defined]
    known = dict.fromkeys(objective.metric_names(), 0.0)  # monitor typos fail before training
    if (followed := followed_monitor(trainer.monitor, objective)) != trainer.monitor:
        trainer.monitor = followed  # the default follows the task (val/mse, val/ppl)
        trainer.mode = resolve_mode(trainer.monitor, cfg.trainer.get("mode", "auto"))
    metric(known, trainer.monitor, "trainer.monitor")
    if regs.early_stopping is not None:
        metric(known, regs.early_stopping.cfg.monitor, "regularization.early_stopping.monitor")
    cuda_graphs = trainer.compile and trainer.compile_mode != "default" and device.type == "cuda"
    skip = trainer.on_nonfinite == "skip"
    run = Run(
        cfg=cfg,
        trainer=trainer,
        ctx=ctx,
        device=device,
        run_dir=run_dir,
        data=data,
        regs=regs,
        model=model,
        compiled=compiled,
        train_model=train_model,
        eval_model=compiled,
        optimizer=optimizer,
        schedule=schedule,
        scaler=torch.amp.GradScaler(device.type, enabled=trainer.precision == "16-mixed"),
        augment=augment,
        inputs=Inputs(info, device, trainer.channels_last, objective.target),
        objective=objective,
        eval_objective=build_objective(info, task),
        meter=TrainMeter(device, objective.stats, objective.width, skip, copy_outputs=cuda_graphs),
        autocast=autocast_for(device, trainer.precision),
        steps_per_epoch=steps,
        batch_size=batch_size * trainer.accumulate_grad_batches,
        signals=StopSignals(ctx, device),
        board=NullBoard(),
        progress=Progress(enabled=trainer.progress and ctx.main),
    )
    run.step = STEPS[trainer.on_nonfinite](run, trainer.accumulate_grad_batches)
    run.config = OmegaConf.to_container(cfg, resolve=True)
    user = [user_callback(s, i) for i, s in enumerate(trainer.callbacks)]
    callbacks = default_callbacks(run, user, quiet=quiet)
    run.callbacks = CallbackList([c for c in callbacks if ctx.main or c.every_rank])
    resume_run(run, resume)
    if ctx.main:  # a resume drops events past its checkpoint (all of them: none was written)
        purge = run.state.step + 1 if run.resumed else (1 if resume else None)
        run.board = TensorBoard(run_dir, purge_step=purge)
    gc.freeze()  # what set-up made lives as long as the run: collections skip it from here
    gc.enable()
    return run
