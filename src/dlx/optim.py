"""Optimizers and learning-rate schedules: the ``optim`` and ``sched`` config groups.

Every optimizer is PyTorch's own; the schema of each option lists exactly the knobs that
optimizer has, range-checked. Schedules wrap ``torch.optim.lr_scheduler`` and know whether
they step once per optimizer step or once per epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlx.registry import Registry, check

OPTIMIZERS: Registry = Registry("optim")
SCHEDULES: Registry = Registry("sched")


# --- optimizers -----------------------------------------------------------------------------
@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = field(default=0.01, metadata=check(ge=0))
    weight_decay: float = field(default=0.0, metadata=check(ge=0))
    # false: no weight decay on biases and norm scales (parameters with ndim <= 1)
    decay_norm_and_bias: bool = True


@dataclass
class SGDConfig(OptimConfig):
    momentum: float = field(default=0.0, metadata=check(ge=0, lt=1))
    dampening: float = field(default=0.0, metadata=check(ge=0, le=1))


@dataclass
class MomentumConfig(SGDConfig):
    name: str = "momentum"
    momentum: float = field(default=0.9, metadata=check(ge=0, lt=1))


@dataclass
class NesterovConfig(MomentumConfig):
    name: str = "nesterov"


@dataclass
class AdagradConfig(OptimConfig):
    name: str = "adagrad"
    lr_decay: float = field(default=0.0, metadata=check(ge=0))
    initial_accumulator_value: float = field(default=0.0, metadata=check(ge=0))
    eps: float = field(default=1e-10, metadata=check(gt=0))


@dataclass
class AdadeltaConfig(OptimConfig):
    name: str = "adadelta"
    lr: float = field(default=1.0, metadata=check(ge=0))
    rho: float = field(default=0.9, metadata=check(ge=0, lt=1))
    eps: float = field(default=1e-6, metadata=check(gt=0))


@dataclass
class RMSpropConfig(OptimConfig):
    name: str = "rmsprop"
    lr: float = field(default=1e-3, metadata=check(ge=0))
    alpha: float = field(default=0.99, metadata=check(ge=0, lt=1))
    eps: float = field(default=1e-8, metadata=check(gt=0))
    momentum: float = field(default=0.0, metadata=check(ge=0, lt=1))
    centered: bool = False


@dataclass
class RMSpropMomentumConfig(RMSpropConfig):
    name: str = "rmsprop_momentum"
    momentum: float = field(default=0.9, metadata=check(ge=0, lt=1))


@dataclass
class AdamConfig(OptimConfig):
    name: str = "adam"
    lr: float = field(default=1e-3, metadata=check(ge=0))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata=check(ge=0, lt=1))
    eps: float = field(default=1e-8, metadata=check(gt=0))
    amsgrad: bool = False

    def validate(self, prefix: str) -> None:
        from dlx.errors import UsageError

        if len(self.betas) != 2:
            raise UsageError(f"{prefix}.betas={self.betas}: expected two numbers [beta1, beta2]")


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = field(default=0.01, metadata=check(ge=0))


@dataclass
class NAdamConfig(AdamConfig):
    name: str = "nadam"
    lr: float = field(default=2e-3, metadata=check(ge=0))
    decoupled_weight_decay: bool = False


@dataclass
class RAdamConfig(AdamConfig):
    name: str = "radam"
    decoupled_weight_decay: bool = False


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """One group, or two when weight decay must skip biases and norm scales (ndim <= 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_norm_and_bias or cfg.weight_decay == 0:
        return [{"params": params}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _common(cfg: OptimConfig) -> dict[str, Any]:
    return {"lr": cfg.lr, "weight_decay": cfg.weight_decay}


def _adam_kwargs(cfg: AdamConfig) -> dict[str, Any]:
    return {**_common(cfg), "betas": tuple(cfg.betas), "eps": cfg.eps}


_OPTIMIZER_FACTORIES: dict[str, tuple[type, Any]] = {
    "sgd": (
        SGDConfig,
        lambda c, p: torch.optim.SGD(p, **_common(c), momentum=c.momentum, dampening=c.dampening),
    ),
    "momentum": (
        MomentumConfig,
        lambda c, p: torch.optim.SGD(p, **_common(c), momentum=c.momentum, dampening=c.dampening),
    ),
    "nesterov": (
        NesterovConfig,
        lambda c, p: torch.optim.SGD(p, **_common(c), momentum=c.momentum, nesterov=True),
    ),
    "adagrad": (
        AdagradConfig,
        lambda c, p: torch.optim.Adagrad(
            p,
            **_common(c),
            lr_decay=c.lr_decay,
            initial_accumulator_value=c.initial_accumulator_value,
            eps=c.eps,
        ),
    ),
    "adadelta": (
        AdadeltaConfig,
        lambda c, p: torch.optim.Adadelta(p, **_common(c), rho=c.rho, eps=c.eps),
    ),
    "rmsprop": (
        RMSpropConfig,
        lambda c, p: torch.optim.RMSprop(
            p, **_common(c), alpha=c.alpha, eps=c.eps, momentum=c.momentum, centered=c.centered
        ),
    ),
    "rmsprop_momentum": (
        RMSpropMomentumConfig,
        lambda c, p: torch.optim.RMSprop(
            p, **_common(c), alpha=c.alpha, eps=c.eps, momentum=c.momentum, centered=c.centered
        ),
    ),
    "adam": (AdamConfig, lambda c, p: torch.optim.Adam(p, **_adam_kwargs(c), amsgrad=c.amsgrad)),
    "adamw": (AdamWConfig, lambda c, p: torch.optim.AdamW(p, **_adam_kwargs(c), amsgrad=c.amsgrad)),
    "nadam": (
        NAdamConfig,
        lambda c, p: torch.optim.NAdam(
            p, **_adam_kwargs(c), decoupled_weight_decay=c.decoupled_weight_decay
        ),
    ),
    "radam": (
        RAdamConfig,
        lambda c, p: torch.optim.RAdam(
            p, **_adam_kwargs(c), decoupled_weight_decay=c.decoupled_weight_decay
        ),
    ),
}
for _name, (_schema, _factory) in _OPTIMIZER_FACTORIES.items():
    OPTIMIZERS.register(_name, _schema)(
        lambda cfg, model, _f=_factory: _f(cfg, param_groups(model, cfg))
    )


def build_optimizer(node: Any, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer that config node ``cfg.optim`` describes, over ``model``'s parameters."""
    return OPTIMIZERS.build(node, model)


# --- learning-rate schedules ----------------------------------------------------------------
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


@dataclass
class PlateauConfig(SchedConfig):
    name: str = "plateau"
    factor: float = field(default=0.1, metadata=check(gt=0, lt=1))
    patience: int = field(default=3, metadata=check(ge=0))
    threshold: float = field(default=1e-4, metadata=check(ge=0))
    min_lr: float = field(default=0.0, metadata=check(ge=0))


class Schedule:
    """A torch LR scheduler plus when to step it: per optimizer step or per epoch."""

    def __init__(self, scheduler: Any | None, per_step: bool, monitor: bool = False) -> None:
        self.scheduler = scheduler
        self.per_step = per_step
        self.monitor = monitor  # steps with the monitored val metric (plateau)

    def step_batch(self) -> None:
        if self.scheduler is not None and self.per_step:
            self.scheduler.step()

    def step_epoch(self, metric: float | None = None) -> None:
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
    """lr multiplier: linear from 1/warmup to 1 over ``warmup`` steps, then cosine to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


lr_sched = torch.optim.lr_scheduler


@SCHEDULES.register("constant", SchedConfig)
def constant(cfg: SchedConfig, opt, steps_per_epoch: int, epochs: int, mode: str) -> Schedule:
    return Schedule(None, per_step=False)


@SCHEDULES.register("step", StepConfig)
def step(cfg: StepConfig, opt, steps_per_epoch: int, epochs: int, mode: str) -> Schedule:
    return Schedule(lr_sched.StepLR(opt, cfg.step_size, cfg.gamma), per_step=False)


@SCHEDULES.register("multistep", MultiStepConfig)
def multistep(cfg: MultiStepConfig, opt, steps_per_epoch: int, epochs: int, mode: str):
    return Schedule(lr_sched.MultiStepLR(opt, cfg.milestones, cfg.gamma), per_step=False)


@SCHEDULES.register("exponential", ExponentialConfig)
def exponential(cfg: ExponentialConfig, opt, steps_per_epoch: int, epochs: int, mode: str):
    return Schedule(lr_sched.ExponentialLR(opt, cfg.gamma), per_step=False)


@SCHEDULES.register("cosine", CosineConfig)
def cosine(cfg: CosineConfig, opt, steps_per_epoch: int, epochs: int, mode: str) -> Schedule:
    total = steps_per_epoch * epochs
    return Schedule(lr_sched.CosineAnnealingLR(opt, total, eta_min=cfg.min_lr), per_step=True)


@SCHEDULES.register("warmup_cosine", WarmupCosineConfig)
def warmup_cosine(cfg: WarmupCosineConfig, opt, steps_per_epoch: int, epochs: int, mode: str):
    total = steps_per_epoch * epochs
    warm = cfg.warmup * (steps_per_epoch if cfg.warmup_unit == "epochs" else 1)
    base = opt.param_groups[0]["lr"]
    floor = cfg.min_lr / base if base > 0 else 0.0
    fn = lambda s: warmup_cosine_factor(s, warm, total, floor)  # noqa: E731
    return Schedule(lr_sched.LambdaLR(opt, fn), per_step=True)


@SCHEDULES.register("onecycle", OneCycleConfig)
def onecycle(cfg: OneCycleConfig, opt, steps_per_epoch: int, epochs: int, mode: str):
    sched = lr_sched.OneCycleLR(
        opt,
        max_lr=[g["lr"] for g in opt.param_groups],
        total_steps=steps_per_epoch * epochs,
        pct_start=cfg.pct_start,
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
    )
    return Schedule(sched, per_step=True)


@SCHEDULES.register("plateau", PlateauConfig)
def plateau(cfg: PlateauConfig, opt, steps_per_epoch: int, epochs: int, mode: str):
    sched = lr_sched.ReduceLROnPlateau(
        opt,
        mode=mode,
        factor=cfg.factor,
        patience=cfg.patience,
        threshold=cfg.threshold,
        min_lr=cfg.min_lr,
    )
    return Schedule(sched, per_step=False, monitor=True)


def build_schedule(
    node: Any, opt: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, mode: str = "max"
) -> Schedule:
    """The schedule that ``cfg.sched`` describes; ``mode`` is the monitored metric's direction."""
    return SCHEDULES.build(node, opt, steps_per_epoch, epochs, mode)
