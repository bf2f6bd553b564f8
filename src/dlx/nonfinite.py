"""Non-finite losses: ``trainer.on_nonfinite=stop|skip``.

The watch itself is in ``meter.TrainMeter`` (it reads the losses where the loop syncs anyway).
``stop`` (default) ends the run there with ``Diverged``. ``skip`` makes a non-finite step a
no-op on the device, without a host sync: the step's gradients are zeroed and the parameters
and optimizer state it touched are put back with ``torch.where``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class Diverged(Exception):
    """The loss became non-finite."""


@torch.no_grad()
def zero_nonfinite_grads(params: list[Tensor], finite: Tensor) -> None:
    """Zero every gradient when ``finite`` is False (so clipping and new optimizer state stay
    finite), without a host sync."""
    for p in params:
        if p.grad is not None:
            p.grad = torch.where(finite, p.grad, torch.zeros((), device=p.grad.device))


@torch.no_grad()
def masked_step(
    optimizer: torch.optim.Optimizer,
    params: list[Tensor],
    finite: Tensor,
    step: Callable[[torch.optim.Optimizer], object],
) -> None:
    """Run ``step(optimizer)`` so that it changes nothing when ``finite`` is False, without a
    host sync: the parameters and the optimizer state on the training device are put back.

    Costs a copy of both per step, so only ``trainer.on_nonfinite=skip`` pays it.
    """
    tensors = list(params)
    for st in optimizer.state.values():
        tensors += [t for t in st.values() if isinstance(t, Tensor) and t.device == finite.device]
    before = [t.clone() for t in tensors]
    step(optimizer)
    for t, b in zip(tensors, before, strict=True):
        t.copy_(torch.where(finite, t, b))
