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
    """Run ``step(optimizer)`` so that it changes nothing when ``finite`` is False: the
    parameters and every optimizer state tensor are put back, and state that the step created
    (the optimizer's first) goes back to zeros, its starting value (Adam's moments and count).

    No host sync where the state lives with the parameters (``keep_state_on_device``); state
    elsewhere (a CPU step count beside GPU parameters) reads the flag there, a sync. Costs a
    copy of the parameters and the state per step, so only ``trainer.on_nonfinite=skip``
    pays it.
    """

    def state() -> dict[tuple[int, str], Tensor]:
        return {
            (id(p), k): t
            for p, st in optimizer.state.items()
            for k, t in st.items()
            if isinstance(t, Tensor)
        }

    flags = {finite.device: finite}

    def keep(t: Tensor, before: Tensor) -> None:
        if t.device not in flags:
            flags[t.device] = finite.to(t.device)
        t.copy_(torch.where(flags[t.device], t, before))

    params_before = [p.clone() for p in params]
    state_before = {key: t.clone() for key, t in state().items()}
    step(optimizer)
    for p, before in zip(params, params_before, strict=True):
        keep(p, before)
    for key, t in state().items():
        before = state_before.get(key)
        keep(t, torch.zeros_like(t) if before is None else before)


def keep_state_on_device(optimizer: torch.optim.Optimizer) -> None:
    """Make the optimizer keep its step counts with the parameters (``capturable``, where it
    has the option) so that ``masked_step`` needs no host sync on a GPU."""
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = True
