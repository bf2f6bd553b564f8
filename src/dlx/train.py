"""The training loop: read it top to bottom.

``run(cfg, run_dir)`` builds data, model, optimizer, schedule, regularizers and augmentation
from the composed config, trains epochs of train-then-val, checkpoints ``last.pt`` every epoch
and ``best.pt`` on improvement of the monitored metric, tests the best checkpoint, and writes
``summary.json`` whatever happens. Metrics accumulate on the device and are read only at
logging intervals, so a step never waits on the host.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from dlx import checkpoint, distributed
from dlx.augment import build_augment
from dlx.augment.preview import log_preview
from dlx.augment.tta import TTA, tta_forward
from dlx.data import build_data, catalogue
from dlx.data.base import DataInfo, DataModule
from dlx.distributed import Dist
from dlx.errors import RunFailed, UsageError
from dlx.log import NullBoard, Progress, TensorBoard, flatten, stderr_line, summary_table
from dlx.meter import TrainMeter, epoch_metrics
from dlx.models import build_model
from dlx.nonfinite import Diverged, keep_state_on_device, masked_step, zero_nonfinite_grads
from dlx.optim import build_optimizer, build_schedule
from dlx.optstats import clip_and_measure, histograms, read, total_norm
from dlx.perf import Throughput, perf_summary
from dlx.profile import StepProfiler
from dlx.registry import check, to_schema
from dlx.regularize import Regularization
from dlx.state import State, maybe_test_kill, restore, snapshot

#: what each epoch measures: what trainer.monitor and early stopping may watch
EPOCH_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")

#: the config's top-level keys: one per group
ROOT_KEYS = ("model", "optim", "sched", "regularization", "augment", "data", "trainer")


def check_root(cfg: DictConfig) -> None:
    """Unknown top-level keys (``+foo=1``) are a usage error, not silently ignored."""
    for key in cfg:
        if key not in ROOT_KEYS:
            raise UsageError(f"{key}: unknown top-level key; allowed: {', '.join(ROOT_KEYS)}")
    missing = [k for k in ROOT_KEYS if k not in cfg]
    if missing:
        raise UsageError(
            f"{', '.join(missing)}: config group missing; choose an option, e.g. {missing[0]}=…"
        )


@dataclass
class TrainerConfig:
    max_epochs: int = field(default=20, metadata=check(ge=1))
    limit_train_batches: int | None = field(default=None, metadata=check(ge=1))
    limit_val_batches: int | None = field(default=None, metadata=check(ge=1))
    device: str = field(default="auto", metadata=check(choices=["auto", "cpu", "cuda", "mps"]))
    precision: str = field(default="32", metadata=check(choices=["32", "bf16-mixed", "16-mixed"]))
    seed: int = 0
    deterministic: bool = False
    log_every_n_steps: int = field(default=20, metadata=check(ge=1))
    histogram_every_n_epochs: int = field(default=0, metadata=check(ge=0))  # 0: off
    monitor: str = "val/acc"  # what best.pt tracks
    mode: str = field(default="max", metadata=check(choices=["min", "max"]))
    compile: bool = False
    compile_mode: str = field(
        default="default", metadata=check(choices=["default", "reduce-overhead", "max-autotune"])
    )
    channels_last: bool = False
    devices: int = field(default=1, metadata=check(ge=1))  # data-parallel ranks (DDP)
    profile: bool = False  # profile a few steps: profile/trace.json and a table of top ops
    progress: bool = True
    tta: str = field(default="none", metadata=check(choices=list(TTA)))  # test-time augmentation
    checkpoint_every_n_steps: int | None = field(default=None, metadata=check(ge=1))
    on_nonfinite: str = field(default="stop", metadata=check(choices=["stop", "skip"]))


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop after the current step."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# --- what the loop needs besides the model ----------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("trainer.device=cuda: no CUDA device is visible; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("trainer.device=mps: MPS is not available; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def compile_model(model: nn.Module, trainer: TrainerConfig) -> nn.Module:
    """``torch.compile(model, mode=trainer.compile_mode)`` with ``trainer.compile``, else
    ``model`` itself (parameters are shared: the optimizer and checkpoints use ``model``)."""
    if not trainer.compile:
        return model
    return torch.compile(model, mode=trainer.compile_mode)


AUTOCAST = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class Objective:
    """Loss and "accuracy" for the task: cross-entropy and top-1, or MSE and |err| < tol."""

    def __init__(self, info: DataInfo, label_smoothing: float = 0.0) -> None:
        self.regression = info.task == "regression"
        self.smoothing = label_smoothing

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.regression:
            return F.mse_loss(out.squeeze(-1).float(), y.float())
        return F.cross_entropy(out.float(), y, label_smoothing=self.smoothing)

    def hits(self, out: Tensor, y: Tensor) -> Tensor:
        """A bool per sample: top-1 right (against the argmax of soft targets: mixup, cutmix),
        or (regression) |error| < 0.04, the tolerance of Hochreiter & Schmidhuber (1997)."""
        if self.regression:
            return (out.squeeze(-1).float() - y).abs() < 0.04
        target = y.argmax(-1) if y.is_floating_point() else y
        return out.argmax(-1) == target

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        return self.hits(out, y).sum()


class Inputs:
    """Turns raw batches into model inputs: uint8 images -> [0, 1] -> augment -> normalise."""

    def __init__(self, info: DataInfo, device: torch.device, channels_last: bool) -> None:
        self.image = info.kind == "image"
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(info.mean, device=device).view(shape)
        self.inv_std = 1 / torch.tensor(info.std, device=device).view(shape)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: Tensor, y: Tensor, augment: Any = None) -> tuple[Tensor, Tensor]:
        if not self.image:
            return x, y
        if augment is not None:  # uint8 in (crop/flip move the bytes), floats in [0, 1] out
            x, y = augment(x, y)
        else:
            x = x.float().div_(255)
        x = (x - self.mean).mul_(self.inv_std)
        return x.contiguous(memory_format=self.memory_format), y


# --- evaluation -----------------------------------------------------------------------------
@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: DataModule,
    split: str,
    inputs: Inputs,
    objective: Objective,
    autocast: Any,
    limit: int | None = None,
    tta: str = "none",
    check_stop: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``split`` (never augmented; ``tta`` opt-in);
    ``check_stop`` is called after each batch (it raises to stop, e.g. on Ctrl-C)."""
    model.eval()
    device = inputs.mean.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for i, (xb, yb) in enumerate(data.batches(split)):
        if limit is not None and i >= limit:
            break
        x, y = inputs(xb, yb)
        with autocast():
            out = tta_forward(model, x, tta)
        loss_sum += objective.loss(out, y) * len(y)
        correct += objective.correct(out, y)
        n += len(y)
        if check_stop is not None:
            check_stop()
    n = max(n, 1)
    return {f"{split}/loss": loss_sum.item() / n, f"{split}/acc": correct.item() / n}


def is_better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


# --- the run --------------------------------------------------------------------------------
def run(
    cfg: DictConfig, run_dir: Path, *, resume: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """Train as ``cfg`` says, in ``run_dir``; return the summary (also in summary.json).

    ``quiet`` leaves out the end-of-run table (in-process callers such as benchmarks). With
    ``trainer.devices=N`` (or under torchrun) this process is one rank of N; rank 0 alone
    writes the run dir's files.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    summary: dict[str, Any] = {
        "status": "failed",
        "epochs": 0,
        "best_epoch": 0,
        "params": 0,
        "duration_s": 0.0,
        "metrics": {},
    }
    held: dict[str, Any] = {"speed": Throughput()}  # what _train opened and run must close
    ctx = Dist()
    device: torch.device | None = None
    try:
        check_root(cfg)
        trainer = to_schema(cfg.trainer, TrainerConfig, "trainer")
        device = pick_device(trainer.device)
        batch = getattr(catalogue().parse(cfg.data), "batch_size", 1)  # a bad one: exit 2
        ctx, run_dir = distributed.start(trainer.devices, device, batch, cfg, run_dir, resume)
        if ctx.enabled and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        held["progress"] = Progress(enabled=trainer.progress and ctx.main)
        _train(cfg, trainer, run_dir, resume, summary, held, ctx, device)
    except UsageError as e:
        summary["error"] = str(e)
        raise
    except Interrupted as e:
        summary["status"] = "interrupted"
        summary["signal"] = str(e)
    except KeyboardInterrupt:  # a second Ctrl-C: leave at once
        summary["status"] = "interrupted"
        summary["signal"] = "SIGINT"
        distributed.kill_workers(ctx)
        raise
    except Diverged as e:
        summary["status"] = "diverged"
        summary["error"] = str(e)
    except RunFailed as e:
        summary["error"] = str(e)
    except Exception as e:  # anything else: keep the traceback in the run dir, one line here
        summary["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        if ctx.main:
            (run_dir / "error.log").write_text(traceback.format_exc())
        else:
            stderr_line(f"rank {ctx.rank}: {traceback.format_exc()}")
    finally:
        if summary["status"] in ("failed", "diverged") and "state" in held:
            _fill(summary, held["state"])  # what was trained before it went wrong
        if summary["status"] in ("failed", "diverged") or "error" in summary:
            distributed.kill_workers(ctx)  # a rank that failed alone would leave the rest waiting
        distributed.finish(ctx)
        summary["duration_s"] = round(time.time() - started, 3)
        summary.update(perf_summary(held["speed"], device))
        if ctx.enabled:
            summary["devices"] = ctx.world
        summary["run_dir"] = str(run_dir)
        if ctx.main:
            checkpoint.write_json(run_dir / "summary.json", summary)
        if "tb" in held:
            held["tb"].hparams_end(summary["status"])
            held["tb"].close()
        if "profiler" in held:
            held["profiler"].stop()
        if "progress" in held:
            held["progress"].stop()
            if summary["status"] in ("completed", "stopped_early") and ctx.main and not quiet:
                held["progress"].print(summary_table(summary, run_dir))
    return summary


def _train(
    cfg: DictConfig,
    trainer: TrainerConfig,
    run_dir: Path,
    resume: bool,
    summary: dict[str, Any],
    held: dict[str, Any],
    ctx: Dist,
    device: torch.device,
) -> None:
    progress: Progress = held["progress"]
    speed: Throughput = held["speed"]
    seed_everything(trainer.seed, trainer.deterministic)
    autocast_dtype = AUTOCAST[trainer.precision]

    def autocast():
        if autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    # Data, regularizers, model, optimizer, schedule, augmentation.
    data = build_data(cfg.data, device)
    info = data.info
    regs = Regularization(cfg.get("regularization"))
    model_node = regs.model_config(cfg.model)  # regularization.dropout.p -> model.dropout
    raw_model = build_model(model_node, info).to(device)
    if trainer.channels_last and info.kind == "image":
        raw_model = raw_model.to(memory_format=torch.channels_last)
    regs.attach(raw_model)
    params = [p for p in raw_model.parameters() if p.requires_grad]
    summary["params"] = sum(p.numel() for p in params)
    # ``model`` evaluates (every rank alike, no communication); ``train_model`` trains, in
    # DistributedDataParallel when there are several ranks.
    model = compile_model(raw_model, trainer)
    train_model = distributed.wrap(model, ctx, device)

    optimizer = build_optimizer(cfg.optim, raw_model)
    skip_nonfinite = trainer.on_nonfinite == "skip"
    if skip_nonfinite and device.type == "cuda":
        keep_state_on_device(optimizer)
    steps_per_epoch = data.num_batches("train", drop_last=True)
    if trainer.limit_train_batches is not None:
        steps_per_epoch = min(steps_per_epoch, trainer.limit_train_batches)
    schedule = build_schedule(
        cfg.sched, optimizer, steps_per_epoch, trainer.max_epochs, mode=trainer.mode
    )
    aug_seed = trainer.seed + 1_000_003 * ctx.rank  # ranks draw different augmentations
    augment = build_augment(cfg.get("augment"), info, device, seed=aug_seed, data=data)
    if (cfg.get("augment") or trainer.tta != "none") and info.kind != "image":
        raise UsageError(
            f"augment, trainer.tta: data={info.name} is a sequence task; "
            "use augment=none trainer.tta=none"
        )
    inputs = Inputs(info, device, trainer.channels_last)
    objective = Objective(info, regs.label_smoothing)
    eval_objective = Objective(info)  # val/test losses: plain, comparable across runs
    known = dict.fromkeys(EPOCH_METRICS, 0.0)  # monitor typos fail before training
    _metric(known, trainer.monitor, "trainer.monitor")
    if regs.early_stopping is not None:
        _metric(known, regs.early_stopping.cfg.monitor, "regularization.early_stopping.monitor")
    scaler = torch.amp.GradScaler(device.type, enabled=trainer.precision == "16-mixed")

    # Resume: everything the checkpoint carries (model, optimizer, schedule, scaler, augment
    # generator, early stopping, counters, in-epoch sums, every random stream).
    parts = {
        "model": raw_model,
        "optimizer": optimizer,
        "schedule": schedule,
        "scaler": scaler,
        "augment": augment,
        "early_stopping": regs.early_stopping,
    }
    cuda_graphs = trainer.compile and trainer.compile_mode != "default" and device.type == "cuda"
    meter = TrainMeter(device, objective.hits, skip_nonfinite, copy_outputs=cuda_graphs)
    state = State()
    ckpt_dir = run_dir / "checkpoints"
    resumed = resume and (ckpt_dir / "last.pt").exists()
    if resumed:
        # every rank loads rank 0's last.pt; rank 0 carries the ranks' summed in-epoch meter
        # and its own random streams, the others restart theirs (not bit-exact under DDP)
        own = parts if ctx.main else {k: v for k, v in parts.items() if k != "augment"}
        state = restore(checkpoint.load(ckpt_dir / "last.pt"), own, meter)
        if not ctx.main:
            meter.reset()
    held["state"] = state
    if ctx.enabled and not ctx.main:  # different dropout etc. per rank, reproducibly
        torch.manual_seed(trainer.seed + 1_000_003 * ctx.rank + state.step)
    meter.last_finite, meter.skipped = state.last_finite_loss, state.skipped

    # TensorBoard: a resume drops events logged after the checkpoint (no duplicated steps).
    if ctx.main:
        tb = held["tb"] = TensorBoard(run_dir, purge_step=state.step + 1 if resumed else None)
    else:
        tb = NullBoard()
    tb.hparams_start(flatten(OmegaConf.to_container(cfg, resolve=True)))
    if not resume and ctx.main:
        tb.text("config", "```yaml\n" + OmegaConf.to_yaml(cfg) + "\n```")
        if cfg.get("augment"):
            log_preview(tb, data, augment, trainer.seed)

    def sync_meter() -> None:  # raises Diverged; never save a non-finite step's weights
        meter.sync()
        state.last_finite_loss, state.skipped = meter.last_finite, meter.skipped

    def epoch_sums() -> dict[str, Tensor]:  # the in-epoch sums of all ranks (a collective)
        sums = meter.state_dict()
        if ctx.enabled:
            flat = torch.stack([v.double() for v in sums.values()]).to(device)
            distributed.all_sum(ctx, flat)
            sums = {k: v.to(sums[k].dtype) for k, v in zip(sums, flat.cpu(), strict=True)}
        return sums

    def save(name: str) -> None:  # every rank calls it at the same point; rank 0 writes
        sync_meter()
        summed = epoch_sums()
        if not ctx.main:
            return
        if name == "last.pt":
            tb.flush()  # events up to this step reach disk before the checkpoint does
        ck = snapshot(parts, state, summed, OmegaConf.to_container(cfg, resolve=True))
        checkpoint.save(ckpt_dir / name, ck)
        if name == "last.pt":
            maybe_test_kill(state.step)

    # Ctrl-C / SIGTERM finish the current step (or validation batch), then stop with last.pt.
    stop_signal: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if stop_signal:  # a second signal: leave at once
            raise KeyboardInterrupt
        stop_signal.append(signum)

    def check_stop(sync_point: bool = True) -> None:
        """Stop on a signal. Under DDP the ranks agree first (a collective), so only at
        points that sync anyway: log steps and epoch ends."""
        if ctx.enabled:
            if sync_point and distributed.any_rank(ctx, bool(stop_signal), device):
                raise Interrupted(stop_signal[0] if stop_signal else signal.SIGTERM)
        elif stop_signal:
            raise Interrupted(stop_signal[0])

    eval_stop = None if ctx.enabled else check_stop  # no per-batch collectives in evaluate
    if trainer.profile and ctx.main:
        held["profiler"] = StepProfiler(run_dir, device, progress.print)
    profiler: StepProfiler | None = held.get("profiler")

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    log_every, ckpt_every = trainer.log_every_n_steps, trainer.checkpoint_every_n_steps
    stopped_early = False
    try:
        for epoch in range(state.epoch, trainer.max_epochs):
            # ---- train one epoch (from batch state.batch when resuming mid-epoch) ----
            train_model.train()
            first = state.batch
            if first == 0:
                meter.reset()
            progress.start_epoch(epoch, trainer.max_epochs, steps_per_epoch)
            window_start, window_seen, last_logged = time.perf_counter(), 0, first
            epoch_samples = 0
            speed.start()
            batches = data.batches(
                "train",
                shuffle=True,
                seed=trainer.seed * 100_003 + epoch,
                drop_last=True,
                start=first,
            )
            for i, (xb, yb) in enumerate(batches, start=first):
                if i >= steps_per_epoch:
                    break
                if ctx.enabled:  # this rank's slice of the global batch
                    xb, yb = xb[ctx.rank :: ctx.world], yb[ctx.rank :: ctx.world]
                x, y = inputs(xb, yb, augment)
                with autocast():
                    out = train_model(x)
                loss = objective.loss(out, y)
                penalties = regs.penalties() if regs.has_penalty else {}
                total = loss + sum(penalties.values()) if penalties else loss
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                # the mean over ranks, so every rank takes the same finite/non-finite decision
                total = distributed.all_mean(ctx, total)
                finite = torch.isfinite(total.detach()) if skip_nonfinite else None
                # every log_every steps; a run shorter than that logs its first epoch's end
                log_now = (state.step + 1) % log_every == 0 or (
                    i + 1 == steps_per_epoch and state.step + 1 < log_every
                )
                if skip_nonfinite:
                    zero_nonfinite_grads(params, finite)
                if regs.clip is not None or log_now:
                    scaler.unscale_(optimizer)  # clip and measure the true gradients
                opt_stats = clip_and_measure(params, regs.clip, measure=log_now)
                if skip_nonfinite:  # a non-finite step changes nothing, without a host sync
                    masked_step(optimizer, params, finite, scaler.step)
                else:
                    scaler.step(optimizer)
                scaler.update()
                regs.after_step()
                if log_now:  # the lr this step used, before the schedule moves it
                    opt_stats["opt/lr"] = optimizer.param_groups[0]["lr"]
                    opt_stats["opt/weight_norm"] = total_norm(params)
                schedule.step_batch()
                state.step += 1
                state.batch = i + 1
                if meter.record(state.step, total, loss, out, y, len(yb)):
                    sync_meter()  # the pending list is full
                window_seen += len(yb) * ctx.world
                epoch_samples += len(yb) * ctx.world
                if profiler is not None:
                    profiler.step()

                if log_now:  # a host sync, every log_every steps (and when the meter is full)
                    sync_meter()
                    step_loss = distributed.all_mean(ctx, loss)
                    logged = read({"train/loss": step_loss, **penalties, **opt_stats})
                    value = logged["train/loss"]
                    elapsed = time.perf_counter() - window_start
                    scalars = {
                        **logged,
                        "perf/samples_per_s": window_seen / max(elapsed, 1e-9),
                    }
                    if skip_nonfinite:
                        scalars["train/skipped_steps"] = float(state.skipped)
                    tb.scalars(scalars, state.step)
                    progress.update(
                        i + 1 - last_logged,
                        {
                            "loss": value,
                            "lr": scalars["opt/lr"],
                            "samples/s": scalars["perf/samples_per_s"],
                        },
                    )
                    window_start, window_seen, last_logged = time.perf_counter(), 0, i + 1
                if ckpt_every is not None and state.step % ckpt_every == 0:
                    save("last.pt")
                check_stop(sync_point=log_now)

            # ---- end of epoch: metrics, val, schedule, checkpoints ----
            sync_meter()
            meter.count_correct()  # train work: inside the timed window
            speed.stop(epoch_samples)
            check_stop()
            metrics = epoch_metrics(epoch_sums())
            metrics.update(
                evaluate(
                    model,
                    data,
                    "val",
                    inputs,
                    eval_objective,
                    autocast,
                    trainer.limit_val_batches,
                    tta=trainer.tta,
                    check_stop=eval_stop,
                )
            )
            metrics = distributed.from_rank0(ctx, metrics, device)  # every rank decides alike
            state.epoch, state.batch = epoch + 1, 0
            state.metrics = metrics
            monitored = _metric(metrics, trainer.monitor, "trainer.monitor")
            schedule.step_epoch(monitored)
            # step-level train/loss is logged above; the epoch's mean goes to train/loss_epoch
            epoch_tags = {
                ("train/loss_epoch" if k == "train/loss" else k): v for k, v in metrics.items()
            }
            if skip_nonfinite:
                epoch_tags["train/skipped_steps"] = float(state.skipped)
            tb.scalars({**epoch_tags, "epoch": float(state.epoch)}, state.step)
            every = trainer.histogram_every_n_epochs
            if every and state.epoch % every == 0:
                tb.histograms(histograms(raw_model), state.step)
            progress.update(steps_per_epoch - last_logged, {})
            progress.end_epoch(metrics)
            if is_better(monitored, state.best, trainer.mode):
                state.best, state.best_epoch = monitored, state.epoch
                save("best.pt")
            if regs.early_stopping is not None:
                _metric(
                    metrics,
                    regs.early_stopping.cfg.monitor,
                    "regularization.early_stopping.monitor",
                )
                stopped_early = regs.early_stopping.step(metrics)
            save("last.pt")
            if stopped_early:
                break
    except Interrupted:
        save("last.pt")  # mid-epoch state: a resume redoes nothing and skips nothing
        _fill(summary, state)
        progress.stop()
        if ctx.main:
            stderr_line(f"interrupted: checkpoint saved; continue with: dlx resume {run_dir}")
        tb.flush()
        raise
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if profiler is not None:
            profiler.stop()

    if not ctx.main:  # rank 0 tests and reports
        _fill(summary, state)
        summary["status"] = "stopped_early" if stopped_early else "completed"
        return

    # ---- test with the best checkpoint ----
    best = checkpoint.load(ckpt_dir / "best.pt")
    raw_model.load_state_dict(best["model"])
    test = evaluate(model, data, "test", inputs, eval_objective, autocast, tta=trainer.tta)
    tb.scalars(test, state.step)
    _fill(summary, state)
    summary["metrics"].update(test)
    if skip_nonfinite:
        summary["skipped_steps"] = state.skipped
    summary["status"] = "stopped_early" if stopped_early else "completed"


def _fill(summary: dict[str, Any], state: State) -> None:
    summary["epochs"] = state.epoch
    summary["best_epoch"] = state.best_epoch
    summary["best_value"] = state.best  # the monitored metric at best_epoch: a sweep's objective
    summary["metrics"] = dict(state.metrics)


def _metric(metrics: dict[str, float], name: str, key: str) -> float:
    if name not in metrics:
        raise UsageError(f"{key}={name}: unknown metric; choose one of: {', '.join(metrics)}")
    return metrics[name]


# --- evaluating a finished run ----------------------------------------------------------------
def evaluate_run(cfg: DictConfig, run_dir: Path, which: str = "best.pt") -> dict[str, float]:
    """Metrics of the run's ``which`` checkpoint on the val and test splits."""
    trainer = to_schema(cfg.trainer, TrainerConfig, "trainer")
    device = pick_device(trainer.device)
    state = checkpoint.load(Path(run_dir) / "checkpoints" / which)
    data = build_data(cfg.data, device)
    model = build_model(cfg.model, data.info).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise RunFailed(
            f"checkpoint {run_dir}/checkpoints/{which}: does not fit model={cfg.model.name} "
            f"({str(e).splitlines()[0]})"
        ) from None
    inputs = Inputs(data.info, device, channels_last=False)
    objective = Objective(data.info)
    dtype = AUTOCAST[trainer.precision]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    metrics = evaluate(model, data, "val", inputs, objective, autocast, tta=trainer.tta)
    metrics.update(evaluate(model, data, "test", inputs, objective, autocast, tta=trainer.tta))
    return metrics
