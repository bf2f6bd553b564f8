"""``dlx lr-find [--min-lr A] [--max-lr B] [--steps N] [--out DIR] [OVERRIDES]``: the
learning-rate range test (Smith, 2017; "Cyclical learning rates", section 3.3).

The parts are built exactly as ``dlx train OVERRIDES`` builds them and trained by the same
loop, with one callback (``LRSweep``) in place of a run's own: the lr grows exponentially
from ``--min-lr`` to ``--max-lr`` over ``--steps`` training steps (one lr per step, the
schedule set aside) and the loss of each step is recorded, smoothed by a bias-corrected
exponential moving average. The test stops early when the smoothed loss exceeds ``DIVERGE``
times its minimum, or goes non-finite: the lr has become too large. The suggestion is
fastai's ``minimum`` rule: a tenth of the lr at which the smoothed loss is lowest (the
steepest-descent rule of Lightning and fastai's ``steep`` picks noise on a curve whose early
part is flat: the bias-corrected average of the first points rests on a few batches). The
first ``SKIP_BEGIN`` points are never suggested. Nothing is trained for keeps and no config
is written: the curve goes to ``lr_find.csv`` and ``lr_find.png`` in
``outputs/lr_find/<time>/``.
"""

from __future__ import annotations

import csv
import math
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.errors import UsageError
from dlx.suggest import allowed

if TYPE_CHECKING:
    import torch

    from dlx.engine.run import Run
    from dlx.engine.spec import RunSpec
    from dlx.engine.state import StepResult

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
    _avg: float = field(default=0.0, repr=False)  # the moving average, not yet bias-corrected
    _best: float = field(default=math.inf, repr=False)  # the smoothed loss's minimum so far

    def add(self, lr: float, loss: float, test: RangeTest) -> bool:
        """Record the step at ``lr``; True when the test is over: the loss went non-finite,
        the smoothed loss rose past ``diverge`` × its minimum, or every step is done."""
        if not math.isfinite(loss):
            self.stop = f"diverged at lr {lr:.3g}: non-finite loss"
            return True
        self._avg = test.beta * self._avg + (1 - test.beta) * loss
        smooth = self._avg / (1 - test.beta ** (len(self.lrs) + 1))
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smooth)
        self._best = min(self._best, smooth)
        if smooth > test.diverge * self._best:
            self.stop = (
                f"diverged at lr {lr:.3g}: smoothed loss {smooth:.4g} > "
                f"{test.diverge:g} × its minimum {self._best:.4g}"
            )
            return True
        return len(self.lrs) >= test.steps


def range_test(step: Callable[[float], float], test: RangeTest) -> Curve:
    """Call ``step(lr)`` (one training step at ``lr``, returning its loss) for each lr of the
    test until it ends or the smoothed loss diverges; the recorded curve."""
    curve = Curve()
    for i in range(test.steps):
        if curve.add(test.lr(i), float(step(test.lr(i))), test):
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


# --- the test as a short run of the ordinary loop --------------------------------------------
class RangeDone(Exception):
    """The range test is over: ``LRSweep`` ends the loop with it."""


class LRSweep(Callback):
    """Sets each step's lr from the range test and records the step's loss (a host sync per
    step: reading every loss is the point); raises ``RangeDone`` when the test is over."""

    def __init__(self, test: RangeTest) -> None:
        self.test, self.curve = test, Curve()

    @property
    def lr(self) -> float:
        """The lr of the next step."""
        return self.test.lr(len(self.curve.lrs))

    def _set_lr(self, run: Run) -> None:
        for group in run.optimizer.param_groups:
            group["lr"] = self.lr

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        self._set_lr(run)

    def on_step_end(self, run: Run, result: StepResult) -> None:
        if self.curve.add(self.lr, float(result.loss), self.test):
            raise RangeDone
        self._set_lr(run)


def sweep_lr(spec: RunSpec, test: RangeTest, out: Path, device: torch.device) -> Curve:
    """The range test on the parts ``dlx train`` builds from ``spec`` (augmentation,
    penalties, clipping and precision included; the schedule set aside, validation cut to
    one batch), run by the ordinary loop (``fit``) with ``LRSweep`` its one callback."""
    import gc

    from dlx.callbacks.hooks import CallbackList
    from dlx.engine.build import build_run
    from dlx.engine.distributed import Dist
    from dlx.engine.loop import fit
    from dlx.engine.nonfinite import Diverged
    from dlx.sched import Schedule

    trainer = replace(spec.trainer, max_epochs=test.steps, limit_val_batches=1, progress=False)
    run = build_run(replace(spec, trainer=trainer), Dist(), device, out, features=False)
    sweep = LRSweep(test)
    run.callbacks, run.schedule = CallbackList([sweep]), Schedule(None, per_step=False)
    try:
        fit(run)
    except RangeDone:
        pass
    except Diverged:  # the meter saw the non-finite loss first
        sweep.curve.stop = f"diverged at lr {sweep.lr:.3g}: non-finite loss"
    finally:
        run.writer.close()
        gc.unfreeze()
    return sweep.curve


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
    from dlx.engine.device import pick_device
    from dlx.engine.spec import parse

    test, out, overrides = parse_args(args)
    spec = parse(compose(overrides))
    device = pick_device(spec.trainer.device)
    what = f"{spec.name} on {device}"
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S") + f"-{secrets.token_hex(2)}"
    out = out or Path("outputs", "lr_find", stamp)
    out.mkdir(parents=True, exist_ok=True)
    print(f"lr-find: {what}; lr {test.min_lr:g} → {test.max_lr:g} over {test.steps} steps")
    started = time.perf_counter()
    curve = sweep_lr(spec, test, out, device)
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
