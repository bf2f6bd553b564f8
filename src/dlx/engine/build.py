"""``build(spec, device) -> Parts``: the one way every command gets a run's parts.

Training, resuming, ``eval`` (one run and ensembles), ``export``, ``sample``, ``summary``,
``macs`` and ``lr-find`` all build from a ``RunSpec`` (``dlx.engine.spec.parse``) here:
``model_of`` is the one place a model is built from a config. ``build_run`` adds what only
training has around the parts: torch.compile, DDP, the step, the callbacks, the resume.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
from dlx.engine.inputs import Inputs
from dlx.engine.meter import TrainMeter
from dlx.engine.monitor import metric, resolve_mode
from dlx.engine.objective import Objective, build_objective, followed_monitor, task_of
from dlx.engine.resume import resume_run
from dlx.engine.run import Run
from dlx.engine.signals import StopSignals
from dlx.engine.spec import RunSpec, empty_split
from dlx.engine.step import STEPS
from dlx.engine.syncbn import has_batchnorm, sync_batchnorm
from dlx.errors import RunFailed, UsageError
from dlx.optim import build_optimizer
from dlx.regularization import Regularization
from dlx.sched import Schedule, build_schedule
from dlx.trainer import TrainerConfig


@dataclass
class Parts:
    """A run's parts on one device. ``optimizer``, ``schedule`` and ``augment`` are None when
    built for evaluation (``train=False``)."""

    spec: RunSpec
    trainer: TrainerConfig  # the spec's, its monitor following the task (val/mse, val/ppl)
    device: torch.device
    data: DataModule
    regs: Regularization
    model: nn.Module
    objective: Objective  # the training loss (label smoothing included)
    eval_objective: Objective  # val/test losses: plain, comparable across runs
    inputs: Inputs
    autocast: Callable[[], AbstractContextManager[object]]
    optimizer: torch.optim.Optimizer | None = None
    schedule: Schedule | None = None
    augment: Augmenter | None = None
    steps_per_epoch: int = 0

    @property
    def info(self) -> DataInfo:
        return self.data.info


def model_of(model: Any, info: DataInfo) -> nn.Module:
    """The model of the parsed ``model`` group (a ``RunSpec``'s) for data shaped like
    ``info``, on the CPU, untrained: the one place a model is built from a config."""
    from dlx.models import build_model

    return build_model(model, info)


def trained_model(
    spec: RunSpec, run_dir: Path, info: DataInfo, device: torch.device, which: str = "best.pt"
) -> nn.Module:
    """The run's model with the weights of ``checkpoints/which``, on ``device``, in eval
    mode; a checkpoint that does not fit is one ``RunFailed`` line."""
    path = Path(run_dir) / "checkpoints" / which
    model = model_of(spec.model, info).to(device)
    try:
        model.load_state_dict(checkpoint.load(path)["model"])
    except RuntimeError as e:
        raise RunFailed(
            f"checkpoint {path}: does not fit model={spec.model.name} ({str(e).splitlines()[0]})"
        ) from None
    return model.eval()


def build(
    spec: RunSpec, device: torch.device, *, train: bool = True, ctx: Dist | None = None
) -> Parts:
    """The parts of ``spec`` on ``device``: data, model, objectives, inputs and, with
    ``train``, the seeded start, optimizer, schedule and augmentation (``ctx``: the DDP ranks
    that share batch-norm statistics)."""
    t = spec.trainer
    if train:
        seed_everything(t.seed, t.deterministic)
    data = build_data(spec.data, device)
    regs = Regularization(spec.regularization)
    model = model_of(spec.model, data.info).to(device)
    if ((train and spec.augment) or t.tta != "none") and data.info.kind != "image":
        keys = (
            ("augment, trainer.tta", "augment=none trainer.tta=none")
            if train
            else (f"trainer.tta={t.tta}", "trainer.tta=none")
        )
        raise UsageError(f"{keys[0]}: data={data.info.name} is a sequence task; use {keys[1]}")
    if not train:
        return _eval_parts(spec, device, data, regs, model)
    model = _placed(model, t, ctx or Dist(), device, data.info)
    regs.attach(model)
    optimizer = build_optimizer(spec.optim, model)
    data = OverfitData(data, t.overfit_batches) if t.overfit_batches else data
    if data.num_batches("train", drop_last=True) == 0 or data.num_batches("val") == 0:
        raise UsageError(empty_split(spec.data, data))
    steps = _steps_per_epoch(data, t)
    schedule = build_schedule(spec.sched, optimizer, steps, t.max_epochs, mode=t.mode)
    task = task_of(model, data.info)
    objective = build_objective(data.info, task, label_smoothing=regs.label_smoothing)
    objective.check_options(task, list(spec.augment), t.tta)
    augment = _augment(spec, data, objective, device, (ctx or Dist()).rank)
    return Parts(
        spec=spec,
        trainer=_follow_task(spec, objective, regs),
        device=device,
        data=data,
        regs=regs,
        model=model,
        objective=objective,
        eval_objective=build_objective(data.info, task),
        inputs=Inputs(data.info, device, t.channels_last, objective.target),
        autocast=autocast_for(device, t.precision),
        optimizer=optimizer,
        schedule=schedule,
        augment=augment,
        steps_per_epoch=steps,
    )


def _eval_parts(
    spec: RunSpec, device: torch.device, data: DataModule, regs: Regularization, model: nn.Module
) -> Parts:
    """Evaluation's parts: the plain objective, no augmentation (``trainer.tta`` checked)."""
    task = task_of(model, data.info)
    objective = build_objective(data.info, task)
    objective.check_options(task, [], spec.trainer.tta)
    return Parts(
        spec=spec,
        trainer=spec.trainer,
        device=device,
        data=data,
        regs=regs,
        model=model,
        objective=objective,
        eval_objective=objective,
        inputs=Inputs(data.info, device, channels_last=False, target=objective.target),
        autocast=autocast_for(device, spec.trainer.precision),
    )


def _placed(
    model: nn.Module, t: TrainerConfig, ctx: Dist, device: torch.device, info: DataInfo
) -> nn.Module:
    """Synchronised batch norm under DDP, channels-last memory when asked for."""
    if ctx.enabled and t.sync_batchnorm and has_batchnorm(model):
        model = sync_batchnorm(model, device)
    if t.channels_last and info.kind == "image":
        model = model.to(memory_format=torch.channels_last)
    return model


def _steps_per_epoch(data: DataModule, t: TrainerConfig) -> int:
    """Optimizer steps per epoch (``limit_train_batches``, ``accumulate_grad_batches``)."""
    batches = data.num_batches("train", drop_last=True)
    steps = batches // t.accumulate_grad_batches
    steps = min(steps, t.limit_train_batches or steps)
    if steps == 0:
        raise UsageError(
            f"trainer.accumulate_grad_batches={t.accumulate_grad_batches}: more than "
            f"the {batches} training batches of an epoch"
        )
    return steps


def _augment(
    spec: RunSpec, data: DataModule, objective: Objective, device: torch.device, rank: int
) -> Augmenter | None:
    """The device-side augmentation; per-sample options go to the loader's workers.

    Per-sample transforms in a DataLoader's workers would reach the target too: a task whose
    target is the image augments on the device, where the target is taken apart."""
    t = spec.trainer
    seed = t.seed + 1_000_003 * rank  # ranks draw different augmentations
    per_sample = hasattr(data, "train_transform") and objective.augments is None
    chosen = None if t.overfit_batches else spec.augment
    augment, sample_transform = split_augment(
        chosen, data.info, device, seed, per_sample=per_sample
    )
    if per_sample:
        data.train_transform = sample_transform  # type: ignore[attr-defined]
    return augment


def _follow_task(spec: RunSpec, objective: Objective, regs: Regularization) -> TrainerConfig:
    """The trainer, its default monitor following the task (``val/mse``, ``val/ppl``); a
    monitor typo fails here, before training."""
    t = spec.trainer
    if (followed := followed_monitor(t.monitor, objective)) != t.monitor:
        raw_mode = spec.config["trainer"].get("mode", "auto")
        t = dataclasses.replace(t, monitor=followed, mode=resolve_mode(followed, raw_mode))
    known = dict.fromkeys(objective.metric_names(), 0.0)
    metric(known, t.monitor, "trainer.monitor")
    if regs.early_stopping is not None:
        metric(known, regs.early_stopping.cfg.monitor, "regularization.early_stopping.monitor")
    return t


def build_run(
    spec: RunSpec,
    ctx: Dist,
    device: torch.device,
    run_dir: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    features: bool = True,
) -> Run:
    """The ``Run`` of ``spec`` on ``device``, resumed from ``last.pt`` when ``resume`` and it
    exists. With ``features`` it gets the callbacks its config asks for and opens the
    TensorBoard writer (closed by ``Run.board.close``); without, it has no callbacks and
    writes nothing (the caller adds its own: ``lr-find``)."""
    p = build(spec, device, ctx=ctx)
    t = p.trainer
    run = _record(p, ctx, run_dir)
    run.step = STEPS[t.on_nonfinite](run, t.accumulate_grad_batches)
    if features:
        user = [user_callback(s, i) for i, s in enumerate(t.callbacks)]
        callbacks = default_callbacks(run, user, quiet=quiet)
        run.callbacks = CallbackList([c for c in callbacks if ctx.main or c.every_rank])
    resume_run(run, resume)
    if ctx.main and features:  # a resume drops events past its checkpoint (all: none written)
        purge = run.state.step + 1 if run.resumed else (1 if resume else None)
        run.board = TensorBoard(run_dir, purge_step=purge)
    gc.freeze()  # what set-up made lives as long as the run: collections skip it from here
    gc.enable()
    return run


def _record(p: Parts, ctx: Dist, run_dir: Path) -> Run:
    """The ``Run`` around training parts ``p``: compiled, wrapped for DDP, the meter, the
    scaler; no callbacks and a no-op step yet (``build_run`` sets them)."""
    t, device = p.trainer, p.device
    compiled = compile_model(p.model, t.compile, t.compile_mode)
    cuda_graphs = t.compile and t.compile_mode != "default" and device.type == "cuda"
    assert p.optimizer is not None and p.schedule is not None
    return Run(
        spec=p.spec,
        trainer=t,
        ctx=ctx,
        device=device,
        run_dir=run_dir,
        data=p.data,
        regs=p.regs,
        model=p.model,
        compiled=compiled,
        train_model=distributed.wrap(compiled, ctx, device),
        eval_model=compiled,
        optimizer=p.optimizer,
        schedule=p.schedule,
        scaler=torch.amp.GradScaler(device.type, enabled=t.precision == "16-mixed"),
        augment=p.augment,
        inputs=p.inputs,
        objective=p.objective,
        eval_objective=p.eval_objective,
        meter=TrainMeter(
            device,
            p.objective.stats,
            p.objective.width,
            skip_nonfinite=t.on_nonfinite == "skip",
            copy_outputs=cuda_graphs,
        ),
        autocast=p.autocast,
        steps_per_epoch=p.steps_per_epoch,
        batch_size=p.spec.batch_size * t.accumulate_grad_batches,
        signals=StopSignals(ctx, device),
        board=NullBoard(),
        progress=Progress(enabled=t.progress and ctx.main),
        callbacks=CallbackList([]),
        step=lambda x, y, log: None,  # type: ignore[arg-type,return-value]  # build_run's
    )
