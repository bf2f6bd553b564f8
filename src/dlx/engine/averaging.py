"""Weight averaging: an exponential moving average of the weights (EMA; Polyak & Juditsky,
1992, as timm's ``ModelEmaV2`` and Lightning keep it) and stochastic weight averaging (SWA;
Izmailov et al., 2018, through ``torch.optim.swa_utils``).

Both keep a copy of the model whose weights are the average; the callbacks in
``dlx.callbacks.averaging`` decide when it is updated and when it is the model evaluated.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn


def _frozen_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    twin.requires_grad_(False)
    return twin.eval()


class EMA:
    """``module`` holds ``ema ← decay · ema + (1 − decay) · w`` of every floating-point entry
    of ``model``'s state (weights and BN statistics); integer buffers (BN's batch counts)
    are copied. ``update`` runs on the device with fused foreach ops: no host sync."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = _frozen_copy(model)
        self.updates = 0
        self.bind(model)

    def bind(self, model: nn.Module) -> None:
        """Pair each entry of ``model``'s state with the average's (same names, same order)."""
        src, avg = model.state_dict(), self.module.state_dict()
        floats = [k for k, v in src.items() if v.is_floating_point()]
        self._src: list[Tensor] = [src[k] for k in floats]
        self._avg: list[Tensor] = [avg[k] for k in floats]
        self._copy = [(avg[k], src[k]) for k in src if not src[k].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average towards the model's current weights."""
        torch._foreach_lerp_(self._avg, self._src, 1.0 - self.decay)
        for dst, src in self._copy:
            dst.copy_(src)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


class SWA:
    """The equal-weight average of the model at the end of each epoch from ``start`` on
    (``torch.optim.swa_utils.AveragedModel``); ``recompute_bn`` fills its BN statistics,
    which an average of weights leaves meaningless."""

    def __init__(self, model: nn.Module) -> None:
        from torch.optim.swa_utils import AveragedModel

        self.averaged = AveragedModel(model)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The averaged network itself (what is evaluated and saved as ``model``)."""
        return self.averaged.module

    @property
    def n_averaged(self) -> int:
        return int(self.averaged.n_averaged.item())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recompute_bn(model: nn.Module, inputs: Iterable[Tensor]) -> None:
    """BN running statistics of ``model`` recomputed from scratch over ``inputs`` (model
    inputs, one batch each): the cumulative average of the batch statistics
    (``torch.optim.swa_utils.update_bn``)."""
    from torch.optim.swa_utils import update_bn

    update_bn(inputs, model)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
