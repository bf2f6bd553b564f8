"""The training steps' bookkeeping, kept off the host: ``TrainMeter``.

A step hands over its loss tensors and its predictions and targets (one value per sample) and
the meter keeps them as they are: no device work, no host sync. ``sync()`` runs only where the
loop syncs anyway (log steps, checkpoints, epoch end), or every ``MAX_PENDING`` steps; it reads
the pending losses to the host in one transfer and

- stops the run with ``Diverged`` at the first non-finite loss (``trainer.on_nonfinite=stop``),
  naming its step and the last finite loss, or counts the step as skipped (``skip``: the step
  itself was already undone on the device, see ``nonfinite.masked_step``);
- adds the finite steps to the epoch's sums: the loss in float64 on the host, step by step, so
  the sums do not depend on where the syncs fell (a resumed run matches an unbroken one bit for
  bit), and the correct predictions in one device reduction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dlx.nonfinite import Diverged

#: at most this many steps wait for a sync (bounds the memory held between log steps)
MAX_PENDING = 256


@dataclass
class _Step:
    step: int
    total: Tensor  # what the watch sees: loss + penalties (the mean over ranks under DDP)
    loss: Tensor  # the objective alone, this rank's
    pred: Tensor  # per sample
    target: Tensor  # per sample
    n: int


class TrainMeter:
    """An epoch's train loss and accuracy, and the non-finite watch across the run."""

    def __init__(
        self,
        device: torch.device,
        hits: Callable[[Tensor, Tensor], Tensor],
        skip_nonfinite: bool = False,
        last_finite: float | None = None,
        skipped: int = 0,
    ) -> None:
        self.device = device
        self.hits = hits  # (pred, target) -> a bool per sample
        self.skip_nonfinite = skip_nonfinite
        self.last_finite = last_finite
        self.skipped = skipped
        self.pending: list[_Step] = []
        self.reset()

    def reset(self) -> None:
        """Start an epoch's sums (the non-finite watch carries on)."""
        self.pending.clear()
        self.loss_sum = 0.0
        self.seen = 0
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)

    def record(
        self, step: int, total: Tensor, loss: Tensor, pred: Tensor, target: Tensor, n: int
    ) -> bool:
        """Keep step ``step``'s tensors; True when ``sync()`` is due (the list is full)."""
        self.pending.append(_Step(step, total.detach(), loss.detach(), pred, target, n))
        return len(self.pending) >= MAX_PENDING

    def sync(self) -> None:
        """Fold the pending steps into the sums (one host transfer); raise ``Diverged`` at the
        first non-finite loss unless non-finite steps are skipped."""
        if not self.pending:
            return
        steps, self.pending = self.pending, []
        values = torch.stack([t.float() for s in steps for t in (s.total, s.loss)]).tolist()
        kept = []
        for s, total, loss in zip(steps, values[0::2], values[1::2], strict=True):
            if not math.isfinite(total):
                if not self.skip_nonfinite:
                    raise Diverged(
                        f"non-finite loss at step {s.step}; last finite loss {self.last_finite}"
                    )
                self.skipped += 1
                continue
            self.last_finite = total
            self.loss_sum += loss * s.n
            self.seen += s.n
            kept.append(s)
        if kept:
            pred = torch.cat([s.pred for s in kept])
            target = torch.cat([s.target for s in kept])
            self.correct += self.hits(pred, target).sum()

    def state_dict(self) -> dict[str, Any]:
        """The epoch's sums so far (pending steps folded in first): what a checkpoint keeps
        and what ``epoch_metrics`` reads."""
        self.sync()
        return {
            "loss_sum": torch.tensor(self.loss_sum, dtype=torch.float64),
            "correct": self.correct.cpu(),
            "seen": torch.tensor(self.seen),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending.clear()
        self.loss_sum = float(state["loss_sum"])
        self.seen = int(state["seen"])
        self.correct = torch.as_tensor(state["correct"]).to(self.device, torch.long)


def epoch_metrics(sums: dict[str, Tensor]) -> dict[str, float]:
    """The mean train loss and accuracy from ``TrainMeter.state_dict()`` (or its sum over
    ranks)."""
    n = max(int(sums["seen"]), 1)
    return {"train/loss": float(sums["loss_sum"]) / n, "train/acc": int(sums["correct"]) / n}
