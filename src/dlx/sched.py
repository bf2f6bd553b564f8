"""Learning-rate schedules: the ``sched`` config group.

Schedules wrap ``torch.optim.lr_scheduler`` and know whether they step once per optimizer step
or once per epoch; their ``state_dict`` goes into ``last.pt`` so a resumed run continues the
same lr curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from dlx.errors import UsageError
from dlx.registry import Registry, check

SCHEDULES: Registry = Registry("sched")

Optimizer = torch.optim.Optimizer


@dataclass
class SchedConfig:
    name: str = "constant"


@dataclass
class StepConfig(SchedConfig):
    name: str = "step"
    step_size: int = field(default=10, metadata=check(ge=1))  # epochs
    gamma: float = field(default=0.1, metadata=check(gt=0, le=1))


@dataclass
class MultiStepConfig(SchedConfig):
    name: str = "multistep"
    milestones: list[int] = field(default_factory=lambda: [10, 15], metadata=check(ge=1))
    gamma: float = field(default=0.1, metadata=check(gt=0, le=1))


@dataclass
class ExponentialConfig(SchedConfig):
    name: str = "exponential"
    gamma: float = field(default=0.95, metadata=check(gt=0, le=1))  # per epoch


@dataclass
class CosineConfig(SchedConfig):
    name: str = "cosine"
    min_lr: float = field(default=0.0, metadata=check(ge=0))


@dataclass
class WarmupCosineConfig(CosineConfig):
    name: str = "warmup_cosine"
    warmup: int = field(default=1, metadata=check(ge=0))
    warmup_unit: str = field(default="epochs", metadata=check(choices=["epochs", "steps"]))


@dataclass
class OneCycleConfig(SchedConfig):
    name: str = "onecycle"
    pct_start: float = field(default=0.3, metadata=check(gt=0, lt=1))
    div_factor: float = field(default=25.0, metadata=check(gt=0))
    final_div_factor: float = field(default=1e4, metadata=check(gt=0))
    # momentum (or Adam's beta1) runs opposite to the lr, where the optimizer has momentum
    cycle_momentum: bool = True
    base_momentum: float = field(default=0.85, metadata=check(ge=0, lt=1))
    max_momentum: float = field(default=0.95, metadata=check(ge=0, lt=1))

    def validate(self, prefix: str) -> None:
        if self.base_momentum > self.max_momentum:
            raise UsageError(
                f"{prefix}.base_momentum={self.base_momentum}: must be <= "
                f"{prefix}.max_momentum={self.max_momentum}"
            )


@dataclass
class PlateauConfig(SchedConfig):
    name: str = "plateau"
    factor: float = field(default=0.1, metadata=check(gt=0, lt=1))
    # epochs in a row without improvement after which the lr is cut, at the end of the last
    # of them: what regularization.early_stopping.patience counts too
    patience: int = field(default=3, metadata=check(ge=1))
    threshold: float = field(default=1e-4, metadata=check(ge=0))
    min_lr: float = field(default=0.0, metadata=check(ge=0))


class Schedule:
    """A torch LR scheduler plus when to step it: per optimizer step or per epoch."""

    def __init__(self, scheduler: Any | None, per_step: bool, monitor: bool = False) -> None:
        self.scheduler = scheduler
        self.per_step = per_step
        self.monitor = monitor  # steps with the monitored val metric (plateau)

    def step_batch(self) -> None:
        """After every optimizer step."""
        if self.scheduler is not None and self.per_step:
            self.scheduler.step()

    def step_epoch(self, metric: float | None = None) -> None:
        """After every epoch's validation, with the monitored metric."""
        if self.scheduler is None or self.per_step:
            return
        if self.monitor:
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


def warmup_cosine_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """lr multiplier at optimizer step ``step`` (0-based): (step+1)/warmup for the first
    ``warmup`` steps, then 1 -> ``floor`` along half a cosine over the remaining steps."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


lr_sched = torch.optim.lr_scheduler


@SCHEDULES.register("constant", SchedConfig)
def constant(cfg: SchedConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str):
    return Schedule(None, per_step=False)


@SCHEDULES.register("step", StepConfig)
def step(cfg: StepConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str):
    return Schedule(lr_sched.StepLR(opt, cfg.step_size, cfg.gamma), per_step=False)


@SCHEDULES.register("multistep", MultiStepConfig)
def multistep(cfg: MultiStepConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str):
    return Schedule(lr_sched.MultiStepLR(opt, cfg.milestones, cfg.gamma), per_step=False)


@SCHEDULES.register("exponential", ExponentialConfig)
def exponential(
    cfg: ExponentialConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str
):
    return Schedule(lr_sched.ExponentialLR(opt, cfg.gamma), per_step=False)


@SCHEDULES.register("cosine", CosineConfig)
def cosine(cfg: CosineConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str):
    total = steps_per_epoch * epochs
    return Schedule(lr_sched.CosineAnnealingLR(opt, total, eta_min=cfg.min_lr), per_step=True)


@SCHEDULES.register("warmup_cosine", WarmupCosineConfig)
def warmup_cosine(
    cfg: WarmupCosineConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str
):
    total = steps_per_epoch * epochs
    warm = cfg.warmup * (steps_per_epoch if cfg.warmup_unit == "epochs" else 1)
    base = opt.param_groups[0]["lr"]
    floor = cfg.min_lr / base if base > 0 else 0.0
    fn = lambda s: warmup_cosine_factor(s, warm, total, floor)  # noqa: E731
    return Schedule(lr_sched.LambdaLR(opt, fn), per_step=True)


def has_momentum(opt: Optimizer) -> bool:
    """Whether the optimizer uses momentum that one-cycle can cycle (momentum > 0, or betas)."""
    d = opt.defaults
    return "betas" in d or d.get("momentum", 0) > 0


@SCHEDULES.register("onecycle", OneCycleConfig)
def onecycle(cfg: OneCycleConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str):
    sched = lr_sched.OneCycleLR(
        opt,
        max_lr=[g["lr"] for g in opt.param_groups],
        total_steps=steps_per_epoch * epochs,
        pct_start=cfg.pct_start,
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
        cycle_momentum=cfg.cycle_momentum and has_momentum(opt),
        base_momentum=cfg.base_momentum,
        max_momentum=cfg.max_momentum,
    )
    return Schedule(sched, per_step=True)


@SCHEDULES.register("plateau", PlateauConfig)
def plateau(cfg: PlateauConfig, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str):
    sched = lr_sched.ReduceLROnPlateau(
        opt,
        mode=mode,
        factor=cfg.factor,
        patience=cfg.patience - 1,  # torch cuts on the first epoch *past* its patience
        threshold=cfg.threshold,
        min_lr=cfg.min_lr,
    )
    return Schedule(sched, per_step=False, monitor=True)


def build_schedule(
    node: Any, opt: Optimizer, steps_per_epoch: int, epochs: int, mode: str = "max"
) -> Schedule:
    """The schedule that ``cfg.sched`` describes; ``mode`` is the monitored metric's direction
    (``trainer.mode``: plateau watches ``trainer.monitor``)."""
    return SCHEDULES.build(node, opt, steps_per_epoch, epochs, mode)
