"""Optimizers: the ``optim`` config group (schedules: ``dlx.sched``).

Every optimizer is PyTorch's own; the schema of each option lists exactly the knobs that
optimizer has, range-checked, and one small builder per option hands them over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlx.errors import UsageError
from dlx.registry import Registry, check

OPTIMIZERS: Registry = Registry("optim")

Optimizer = torch.optim.Optimizer


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
class NesterovConfig(OptimConfig):
    name: str = "nesterov"
    momentum: float = field(default=0.9, metadata=check(gt=0, lt=1))  # Nesterov needs some


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
    centered: bool = False  # divide by the running std of the gradient, not its RMS


@dataclass
class RMSpropMomentumConfig(RMSpropConfig):
    name: str = "rmsprop_momentum"
    momentum: float = field(default=0.9, metadata=check(ge=0, lt=1))


@dataclass
class AdamFamilyConfig(OptimConfig):
    """The keys every Adam variant has."""

    lr: float = field(default=1e-3, metadata=check(ge=0))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata=check(ge=0, lt=1))
    eps: float = field(default=1e-8, metadata=check(gt=0))

    def validate(self, prefix: str) -> None:
        if len(self.betas) != 2:
            raise UsageError(f"{prefix}.betas={self.betas}: expected two numbers [beta1, beta2]")


@dataclass
class AdamConfig(AdamFamilyConfig):
    name: str = "adam"
    amsgrad: bool = False


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = field(default=0.01, metadata=check(ge=0))


@dataclass
class NAdamConfig(AdamFamilyConfig):
    name: str = "nadam"
    lr: float = field(default=2e-3, metadata=check(ge=0))
    momentum_decay: float = field(default=4e-3, metadata=check(ge=0))
    decoupled_weight_decay: bool = False


@dataclass
class RAdamConfig(AdamFamilyConfig):
    name: str = "radam"
    decoupled_weight_decay: bool = False


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """One group, or two when weight decay must skip biases and norm scales (ndim <= 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_norm_and_bias or cfg.weight_decay == 0:
        return [{"params": params}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _base(cfg: OptimConfig, model: nn.Module) -> dict[str, Any]:
    """Arguments every torch optimizer takes: parameter groups, lr, weight decay."""
    return {"params": param_groups(model, cfg), "lr": cfg.lr, "weight_decay": cfg.weight_decay}


def _adam_family(cfg: AdamFamilyConfig, model: nn.Module) -> dict[str, Any]:
    return {**_base(cfg, model), "betas": tuple(cfg.betas), "eps": cfg.eps}


@OPTIMIZERS.register("sgd", SGDConfig)
@OPTIMIZERS.register("momentum", MomentumConfig)
def sgd(cfg: SGDConfig, model: nn.Module) -> Optimizer:
    """w -= lr·v with v = momentum·v + (1 - dampening)·g (heavy ball; plain SGD at momentum 0)."""
    return torch.optim.SGD(**_base(cfg, model), momentum=cfg.momentum, dampening=cfg.dampening)


@OPTIMIZERS.register("nesterov", NesterovConfig)
def nesterov(cfg: NesterovConfig, model: nn.Module) -> Optimizer:
    """w -= lr·(g + momentum·v): the step looks ahead along the velocity."""
    return torch.optim.SGD(**_base(cfg, model), momentum=cfg.momentum, nesterov=True)


@OPTIMIZERS.register("adagrad", AdagradConfig)
def adagrad(cfg: AdagradConfig, model: nn.Module) -> Optimizer:
    return torch.optim.Adagrad(
        **_base(cfg, model),
        lr_decay=cfg.lr_decay,
        initial_accumulator_value=cfg.initial_accumulator_value,
        eps=cfg.eps,
    )


@OPTIMIZERS.register("adadelta", AdadeltaConfig)
def adadelta(cfg: AdadeltaConfig, model: nn.Module) -> Optimizer:
    return torch.optim.Adadelta(**_base(cfg, model), rho=cfg.rho, eps=cfg.eps)


@OPTIMIZERS.register("rmsprop", RMSpropConfig)
@OPTIMIZERS.register("rmsprop_momentum", RMSpropMomentumConfig)
def rmsprop(cfg: RMSpropConfig, model: nn.Module) -> Optimizer:
    return torch.optim.RMSprop(
        **_base(cfg, model),
        alpha=cfg.alpha,
        eps=cfg.eps,
        momentum=cfg.momentum,
        centered=cfg.centered,
    )


@OPTIMIZERS.register("adam", AdamConfig)
def adam(cfg: AdamConfig, model: nn.Module) -> Optimizer:
    """weight_decay is coupled: added to the gradient, then rescaled by the adaptive step."""
    return torch.optim.Adam(**_adam_family(cfg, model), amsgrad=cfg.amsgrad)


@OPTIMIZERS.register("adamw", AdamWConfig)
def adamw(cfg: AdamWConfig, model: nn.Module) -> Optimizer:
    """weight_decay is decoupled: w -= lr·wd·w, outside the adaptive step."""
    return torch.optim.AdamW(**_adam_family(cfg, model), amsgrad=cfg.amsgrad)


@OPTIMIZERS.register("nadam", NAdamConfig)
def nadam(cfg: NAdamConfig, model: nn.Module) -> Optimizer:
    return torch.optim.NAdam(
        **_adam_family(cfg, model),
        momentum_decay=cfg.momentum_decay,
        decoupled_weight_decay=cfg.decoupled_weight_decay,
    )


@OPTIMIZERS.register("radam", RAdamConfig)
def radam(cfg: RAdamConfig, model: nn.Module) -> Optimizer:
    return torch.optim.RAdam(
        **_adam_family(cfg, model), decoupled_weight_decay=cfg.decoupled_weight_decay
    )


def build_optimizer(node: Any, model: nn.Module) -> Optimizer:
    """The optimizer that config node ``cfg.optim`` describes, over ``model``'s parameters."""
    return OPTIMIZERS.build(node, model)
