"""Regularization: the ``regularization`` config group, several options at once.

Each chosen option's keys live under ``regularization.<name>.``. The options act at
different points of a training step, so ``Regularization`` gathers them by hook:

- ``l1`` / ``l2``: explicit penalties added to the data loss (α·‖w‖₁, α/2·‖w‖²). The l2
  penalty is not the optimizer's ``weight_decay``: for SGD the two coincide, for Adam the
  penalty's gradient is rescaled by the adaptive step and AdamW's decoupled decay is not;
- ``clip_grad``: clip the gradient by global norm or by value before the step;
- ``maxnorm``: after the step, project each unit's incoming weight vector into the ball of
  radius ``c`` (Srebro & Shraibman, 2005; Srivastava et al., 2014);
- ``dropout``: sets the model's ``dropout`` probability where the model has dropout;
- ``label_smoothing``: soft targets in the cross-entropy (Szegedy et al., 2016);
- ``early_stopping``: end the run when the monitored metric stops improving;
- ``ema``: an exponential moving average of the weights, evaluated and kept in ``best.pt``;
- ``swa``: stochastic weight averaging from epoch ``swa_start``; the averaged model (its BN
  statistics recomputed) is what is tested. Both are callbacks (``dlx.callbacks.averaging``).

Penalties and constraints touch weights only by default (parameters with ndim > 1: not
biases, not norm scales); ``params: all`` includes every parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dlx.errors import UsageError
from dlx.registry import Registry, check

REGULARIZERS: Registry = Registry("regularization")

PARAMS = check(choices=["weights", "all"])


@dataclass
class L2Config:
    alpha: float = field(default=5e-4, metadata=check(ge=0))
    params: str = field(default="weights", metadata=PARAMS)


@dataclass
class L1Config:
    alpha: float = field(default=1e-5, metadata=check(ge=0))
    params: str = field(default="weights", metadata=PARAMS)


@dataclass
class MaxNormConfig:
    c: float = field(default=3.0, metadata=check(gt=0))
    params: str = field(default="weights", metadata=PARAMS)


@dataclass
class DropoutConfig:
    p: float = field(default=0.5, metadata=check(ge=0, lt=1))


@dataclass
class ClipGradConfig:
    mode: str = field(default="norm", metadata=check(choices=["norm", "value"]))
    max_norm: float = field(default=1.0, metadata=check(gt=0))  # mode=norm
    norm_type: float = field(default=2.0, metadata=check(gt=0))
    value: float = field(default=1.0, metadata=check(gt=0))  # mode=value: clamp to ±value


@dataclass
class LabelSmoothingConfig:
    smoothing: float = field(default=0.1, metadata=check(ge=0, lt=1))


@dataclass
class EarlyStoppingConfig:
    monitor: str = "val/loss"
    # auto: min for losses (val/loss), max otherwise (val/acc), as trainer.mode
    mode: str = field(default="auto", metadata=check(choices=["auto", "min", "max"]))
    # epochs in a row without improvement; the run stops at the end of the last of them
    patience: int = field(default=5, metadata=check(ge=1))
    min_delta: float = field(default=0.0, metadata=check(ge=0))

    def validate(self, prefix: str) -> None:
        from dlx.engine.monitor import resolve_mode

        self.mode = resolve_mode(self.monitor, self.mode)


@dataclass
class EMAConfig:
    decay: float = field(default=0.999, metadata=check(gt=0, lt=1))  # ema ← d·ema + (1−d)·w


@dataclass
class SWAConfig:
    swa_start: int | None = field(default=None, metadata=check(ge=1))  # null: last 25% of epochs
    swa_lr: float | None = field(default=None, metadata=check(gt=0))  # null: the schedule's lr


for _name, _schema in {
    "l2": L2Config,
    "l1": L1Config,
    "maxnorm": MaxNormConfig,
    "dropout": DropoutConfig,
    "clip_grad": ClipGradConfig,
    "label_smoothing": LabelSmoothingConfig,
    "early_stopping": EarlyStoppingConfig,
    "ema": EMAConfig,
    "swa": SWAConfig,
}.items():
    REGULARIZERS.register(_name, _schema)(lambda cfg: cfg)


def select_params(model: nn.Module, which: str) -> list[Tensor]:
    """The parameters a penalty or constraint touches: ``weights`` (ndim > 1) or ``all``."""
    params = [p for p in model.parameters() if p.requires_grad]
    return params if which == "all" else [p for p in params if p.ndim > 1]


def l1_penalty(params: list[Tensor], alpha: float) -> Tensor:
    """α·Σ|w|; its gradient is α·sign(w)."""
    return alpha * torch.stack(torch._foreach_norm(params, 1)).sum()


def l2_penalty(params: list[Tensor], alpha: float) -> Tensor:
    """α/2·Σw²; its gradient is α·w, the same step as SGD's weight_decay=α."""
    return 0.5 * alpha * torch.stack(torch._foreach_norm(params, 2)).square().sum()


@torch.no_grad()
def clip_gradients(params: list[Tensor], cfg: ClipGradConfig) -> None:
    """Clip in place: the global ``norm_type`` norm to ``max_norm``, or each entry to ±value."""
    if cfg.mode == "norm":
        nn.utils.clip_grad_norm_(params, cfg.max_norm, cfg.norm_type)
    else:
        nn.utils.clip_grad_value_(params, cfg.value)


@torch.no_grad()
def apply_maxnorm(params: list[Tensor], c: float) -> None:
    """Rescale each unit's incoming weights (dim 0 rows) whose L2 norm exceeds ``c``."""
    for p in params:
        p.renorm_(2, 0, c)


class EarlyStopping:
    """Counts epochs without improvement of ``monitor`` by more than ``min_delta``."""

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        cfg.validate("regularization.early_stopping")
        self.cfg = cfg
        self.best = math.inf if cfg.mode == "min" else -math.inf
        self.wait = 0

    def improved(self, value: float) -> bool:
        if self.cfg.mode == "min":
            return value < self.best - self.cfg.min_delta
        return value > self.best + self.cfg.min_delta

    def step(self, metrics: dict[str, float]) -> bool:
        """Record an epoch's metrics; True once ``patience`` epochs in a row did not improve."""
        value = metrics[self.cfg.monitor]
        if self.improved(value):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        return self.wait >= self.cfg.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


class Regularization:
    """The chosen regularizers, grouped by the point of the training step they act at."""

    def __init__(self, node: Any) -> None:
        names = list(node.keys()) if node else []
        self.cfg: dict[str, Any] = {
            n: REGULARIZERS.parse(node[n], n, prefix=f"regularization.{n}") for n in names
        }
        self._penalty_params: dict[str, list[Tensor]] = {}
        self._maxnorm_params: list[Tensor] = []
        es = self.cfg.get("early_stopping")
        self.early_stopping = EarlyStopping(es) if es else None

    @property
    def names(self) -> list[str]:
        return list(self.cfg)

    @property
    def dropout(self) -> float | None:
        d = self.cfg.get("dropout")
        return None if d is None else d.p

    @property
    def label_smoothing(self) -> float:
        s = self.cfg.get("label_smoothing")
        return 0.0 if s is None else s.smoothing

    @property
    def clip(self) -> ClipGradConfig | None:
        return self.cfg.get("clip_grad")

    @property
    def ema(self) -> EMAConfig | None:
        return self.cfg.get("ema")

    @property
    def swa(self) -> SWAConfig | None:
        return self.cfg.get("swa")

    @property
    def has_penalty(self) -> bool:
        return "l1" in self.cfg or "l2" in self.cfg

    def model_config(self, node: Any) -> Any:
        """The model's parsed config with ``dropout`` set to ``regularization.dropout.p``
        (``node`` itself without that regularizer).

        Every model's YAML lists its schema's keys, so a model has dropout layers exactly
        when its node has a ``dropout`` key."""
        if self.dropout is None:
            return node
        if "dropout" not in node:
            raise UsageError(
                f"regularization.dropout: model={node.get('name')} has no dropout layers; "
                "drop it from the list or pick a model with dropout"
            )
        from dlx.models import MODELS

        cfg = MODELS.parse(node)
        cfg.dropout = self.dropout
        return cfg

    def attach(self, model: nn.Module) -> None:
        """Pick the parameters that penalties and constraints touch."""
        for n in ("l1", "l2"):
            if n in self.cfg:
                self._penalty_params[n] = select_params(model, self.cfg[n].params)
        if "maxnorm" in self.cfg:
            self._maxnorm_params = select_params(model, self.cfg["maxnorm"].params)

    def penalties(self) -> dict[str, Tensor]:
        """Each penalty term by TensorBoard tag (``loss/l1``, ``loss/l2``)."""
        out: dict[str, Tensor] = {}
        if "l1" in self._penalty_params:
            out["loss/l1"] = l1_penalty(self._penalty_params["l1"], self.cfg["l1"].alpha)
        if "l2" in self._penalty_params:
            out["loss/l2"] = l2_penalty(self._penalty_params["l2"], self.cfg["l2"].alpha)
        return out

    def after_step(self) -> None:
        """After the optimizer step: project weights back into the max-norm ball."""
        if self._maxnorm_params:
            apply_maxnorm(self._maxnorm_params, self.cfg["maxnorm"].c)
