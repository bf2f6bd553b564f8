"""Non-finite losses, watched on the device: ``trainer.on_nonfinite=stop|skip``.

``stop`` (default) records the first non-finite step and the last finite loss in device
tensors; the loop reads them only where it syncs anyway (log steps, checkpoints, epoch end)
and stops with ``Diverged``. ``skip`` turns a non-finite step into a no-op without a host sync:
the step's gradients are zeroed and the parameters and optimizer state it touched are put
back with ``torch.where``; skipped steps are counted (``train/skipped_steps``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


class Diverged(Exception):
    """The loss became non-finite."""


class NonFiniteGuard:
    """Watches each step's loss on the device; ``check()`` is the only host read."""

    def __init__(
        self, device: torch.device, mode: str, last_finite: float | None = None, skipped: int = 0
    ) -> None:
        self.mode = mode
        self.first_bad = torch.full((), -1, device=device, dtype=torch.long)
        start = math.nan if last_finite is None else last_finite
        self.last_finite = torch.full((), start, device=device)
        self.skipped = torch.full((), skipped, device=device, dtype=torch.long)

    def observe(self, loss: Tensor, step: int) -> Tensor:
        """Record step ``step``'s loss; return a device bool: is it finite?"""
        loss = loss.detach().float()
        finite = torch.isfinite(loss)
        if self.mode == "skip":
            self.skipped += (~finite).long()
        else:
            first = (self.first_bad < 0) & ~finite
            self.first_bad = torch.where(first, step, self.first_bad)
        keep = finite & (self.first_bad < 0)
        self.last_finite = torch.where(keep, loss, self.last_finite)
        return finite

    def check(self) -> tuple[float | None, int]:
        """Raise ``Diverged`` if a step went non-finite (stop mode); else return the last
        finite loss and the number of skipped steps (one host sync)."""
        last = self.last_finite.item()
        last_finite = last if math.isfinite(last) else None
        bad = int(self.first_bad.item())
        if bad >= 0:
            raise Diverged(f"non-finite loss at step {bad}; last finite loss {last_finite}")
        return last_finite, int(self.skipped.item())


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
