"""``dlx lr-find [--min-lr A] [--max-lr B] [--steps N] [--out DIR] [OVERRIDES]``: the
learning-rate range test (Smith, 2017; "Cyclical learning rates", section 3.3).

The model, data and optimizer are built exactly as ``dlx train OVERRIDES`` builds them; the
lr then grows exponentially from ``--min-lr`` to ``--max-lr`` over ``--steps`` training steps
(one lr per step, the schedule set aside) and the loss of each step is recorded, smoothed by
a bias-corrected exponential moving average. The test stops early when the smoothed loss
exceeds ``DIVERGE`` times its minimum, or goes non-finite: the lr has become too large. The
suggestion is fastai's ``minimum`` rule: a tenth of the lr at which the smoothed loss is
lowest (the steepest-descent rule of Lightning and fastai's ``steep`` picks noise on a curve
whose early part is flat: the bias-corrected average of the first points rests on a few
batches). The first ``SKIP_BEGIN`` points are never suggested. Nothing is trained for keeps
and no config is written: the curve goes to ``lr_find.csv`` and ``lr_find.png`` in
``outputs/lr_find/<time>/``.
"""

from __future__ import annotations

import csv
import math
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlx.errors import UsageError
from dlx.suggest import allowed

#: the smoothed loss above DIVERGE × its minimum ends the test
DIVERGE = 4.0
#: the moving average's weight on the past (fastai's and Smith's choice)
BETA = 0.98
#: the first points are never suggested: the smoothed loss there is a few batches' average
#: (Lightning's ``skip_begin``)
SKIP_BEGIN = 10
#: the suggestion is the lr at the smoothed loss's minimum divided by this (fastai's ``minimum``)
MINIMUM_FACTOR = 10.0
#: the rule, as the command prints it
RULE = "a tenth of the lr at the smoothed loss's minimum: fastai's 'minimum' rule"


@dataclass(frozen=True)
class RangeTest:
    min_lr: float = 1e-7
    max_lr: float = 10.0
    steps: int = 300
    beta: float = BETA
    diverge: float = DIVERGE

    def lr(self, i: int) -> float:
        """Step ``i``'s lr: ``min_lr · (max_lr / min_lr) ^ (i / (steps − 1))``."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (i / max(self.steps - 1, 1))


@dataclass
class Curve:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stop: str = "reached --max-lr"


def range_test(step: Callable[[float], float], test: RangeTest) -> Curve:
    """Call ``step(lr)`` (one training step at ``lr``, returning its loss) for each lr of the
    test until it ends or the smoothed loss diverges; the recorded curve."""
    curve = Curve()
    avg, best = 0.0, math.inf
    for i in range(test.steps):
        lr = test.lr(i)
        loss = float(step(lr))
        if not math.isfinite(loss):
            curve.stop = f"diverged at lr {lr:.3g}: non-finite loss"
            break
        avg = test.beta * avg + (1 - test.beta) * loss
        smooth = avg / (1 - test.beta ** (i + 1))
        curve.lrs.append(lr)
        curve.losses.append(loss)
        curve.smoothed.append(smooth)
        best = min(best, smooth)
        if smooth > test.diverge * best:
            curve.stop = (
                f"diverged at lr {lr:.3g}: smoothed loss {smooth:.4g} > "
                f"{test.diverge:g} × its minimum {best:.4g}"
            )
            break
    return curve


def suggest(curve: Curve, skip_begin: int = SKIP_BEGIN) -> float | None:
    """fastai's ``minimum`` rule (also Smith's rule of thumb): a tenth of the lr at which the
    smoothed loss is lowest, snapped to the nearest lr tested. None when that minimum lies in
    the first ``skip_begin`` points (the average there rests on a handful of batches: the
    loss never fell once it settled) or a tenth of it lies among them (``--min-lr`` too
    high): the range's first points are never suggested."""
    import numpy as np

    y = np.asarray(curve.smoothed, dtype=float)
    if len(y) <= skip_begin:
        return None
    low = int(np.argmin(y))
    if low < skip_begin:
        return None
    logs = np.log(np.asarray(curve.lrs[skip_begin : low + 1], dtype=float))
    target = math.log(curve.lrs[low] / MINIMUM_FACTOR)
    if target < logs[0]:
        return None
    return curve.lrs[skip_begin + int(np.argmin(np.abs(logs - target)))]


# --- training steps on the configured model ------------------------------------------------
def training_step(cfg: Any) -> tuple[Callable[[float], float], str]:
    """``step(lr)``: one training step of the model, data and optimizer ``cfg`` describes
    (augmentation, penalties, clipping and precision included), returning the step's loss;
    and a line naming what it trains."""
    import torch

    from dlx.augment import split_augment
    from dlx.data import build_data
    from dlx.engine.device import autocast_for, pick_device, seed_everything
    from dlx.engine.inputs import Inputs
    from dlx.engine.objective import build_objective, task_of
    from dlx.models import build_model
    from dlx.optim import build_optimizer
    from dlx.registry import to_schema
    from dlx.regularization import Regularization, clip_gradients
    from dlx.trainer import TrainerConfig, check_root

    check_root(cfg)
    trainer = to_schema(cfg.trainer, TrainerConfig, "trainer")
    device = pick_device(trainer.device)
    seed_everything(trainer.seed, trainer.deterministic)
    data = build_data(cfg.data, device)
    regs = Regularization(cfg.get("regularization"))
    model = build_model(regs.model_config(cfg.model), data.info).to(device)
    regs.attach(model)
    optimizer = build_optimizer(cfg.optim, model)
    task = task_of(model, data.info)
    objective = build_objective(data.info, task, label_smoothing=regs.label_smoothing)
    objective.check_options(task, list(cfg.get("augment") or []), "none")
    # a DataLoader's workers transform samples (not when the target is the image: see core)
    per_sample = hasattr(data, "train_transform") and objective.augments is None
    augment, sample_transform = split_augment(
        cfg.get("augment"), data.info, device, trainer.seed, per_sample=per_sample
    )
    if per_sample:
        data.train_transform = sample_transform
    inputs = Inputs(data.info, device, channels_last=False, target=objective.target)
    autocast = autocast_for(device, trainer.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=trainer.precision == "16-mixed")
    params = [p for p in model.parameters() if p.requires_grad]

    def batches():
        epoch = 0
        while True:
            seed = trainer.seed * 100_003 + epoch
            yield from data.batches("train", shuffle=True, seed=seed, drop_last=True)
            epoch += 1

    stream = batches()
    model.train()

    def step(lr: float) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr
        xb, yb = next(stream)
        x, y = inputs(xb, yb, augment)
        with autocast():
            out = model(x)
        loss = objective.loss(out, y)
        total = loss + sum(regs.penalties().values()) if regs.has_penalty else loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if regs.clip is not None:
            scaler.unscale_(optimizer)
            clip_gradients(params, regs.clip)
        scaler.step(optimizer)
        scaler.update()
        regs.after_step()
        return loss.item()  # the test reads every step's loss: a host sync is the point

    what = f"model={cfg.model.name} optim={cfg.optim.name} data={cfg.data.name} on {device}"
    return step, what


# --- files ----------------------------------------------------------------------------------
def write_csv(path: Path, curve: Curve) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "lr", "loss", "smoothed_loss"])
        for i, row in enumerate(zip(curve.lrs, curve.losses, curve.smoothed)):
            w.writerow([i, *(f"{v:.8g}" for v in row)])


def plot(path: Path, curve: Curve, suggested: float | None, title: str) -> None:
    """The curve on a log lr axis, the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(curve.lrs, curve.losses, color="0.75", lw=1, label="loss")
    ax.plot(curve.lrs, curve.smoothed, color="C0", lw=2, label="smoothed loss")
    if suggested is not None:
        at = curve.lrs.index(suggested)  # suggest() returns an lr of the curve
        ax.axvline(suggested, color="C3", ls="--", lw=1)
        ax.plot(
            [suggested], [curve.smoothed[at]], "o", color="C3", label=f"suggested {suggested:.2g}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = max(curve.smoothed[0], min(curve.smoothed) * DIVERGE) if curve.smoothed else None
    if top is not None and math.isfinite(top):
        ax.set_ylim(top=top * 1.1, bottom=min(curve.losses + curve.smoothed) * 0.9)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- the command ----------------------------------------------------------------------------
OPTIONS: dict[str, tuple[str, type]] = {
    "--min-lr": ("min_lr", float),
    "--max-lr": ("max_lr", float),
    "--steps": ("steps", int),
    "--out": ("out", str),
}


def parse_args(args: list[str]) -> tuple[RangeTest, Path | None, list[str]]:
    """The options (each ``--opt V`` or ``--opt=V``) and the Hydra overrides."""
    values: dict[str, Any] = {}
    overrides: list[str] = []
    it = iter(args)
    for a in it:
        name, eq, value = a.partition("=")
        if not a.startswith("-"):
            overrides.append(a)
            continue
        if name not in OPTIONS:
            raise UsageError(f"{name}: unknown option; {allowed(name, OPTIONS, 'allowed')}")
        value = value if eq else next(it, None)
        key, kind = OPTIONS[name]
        try:
            values[key] = kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"{name}={value}: expected {kind.__name__}") from None
    out = values.pop("out", None)
    test = RangeTest(**values)
    if not (test.min_lr > 0 and math.isfinite(test.min_lr)):
        raise UsageError(f"--min-lr={test.min_lr}: must be a positive number")
    if not (test.max_lr > test.min_lr and math.isfinite(test.max_lr)):
        raise UsageError(f"--max-lr={test.max_lr}: must exceed --min-lr={test.min_lr:g}")
    if test.steps < 3:
        raise UsageError(f"--steps={test.steps}: must be at least 3")
    return test, None if out is None else Path(out), overrides


def cmd_lr_find(args: list[str]) -> int:
    from dlx.commands.runs import compose

    test, out, overrides = parse_args(args)
    cfg = compose(overrides)
    step, what = training_step(cfg)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S") + f"-{secrets.token_hex(2)}"
    out = out or Path("outputs", "lr_find", stamp)
    out.mkdir(parents=True, exist_ok=True)
    print(f"lr-find: {what}; lr {test.min_lr:g} → {test.max_lr:g} over {test.steps} steps")
    started = time.perf_counter()
    curve = range_test(step, test)
    suggested = suggest(curve)
    write_csv(out / "lr_find.csv", curve)
    plot(out / "lr_find.png", curve, suggested, f"lr range test: {what}")
    print(f"{len(curve.lrs)} steps in {time.perf_counter() - started:.1f} s; {curve.stop}")
    if suggested is None:
        print(
            f"suggested lr: none (the smoothed loss was lowest in its first {SKIP_BEGIN} "
            "points, or a tenth of its minimum's lr lies there); try a smaller --min-lr "
            "or more --steps"
        )
    else:
        print(f"suggested lr: {suggested:.3g} ({RULE})")
        keep = [o for o in overrides if not o.lstrip("+~").startswith("optim.lr=")]
        print(f"  use it with: {shlex.join(['dlx', 'train', *keep, f'optim.lr={suggested:.3g}'])}")
    print(f"curve: {out / 'lr_find.png'}, {out / 'lr_find.csv'}")
    return 0
