"""The training steps' bookkeeping, kept off the host: ``TrainMeter``.

A step hands over its loss tensors, its outputs and its targets and the meter keeps them as
they are: no host sync and no device work (except a copy of the outputs when CUDA graphs would
overwrite them). ``sync()`` runs where the loop syncs anyway (log steps, checkpoints, epoch
end) and when too much waits (``MAX_PENDING`` steps, ``MAX_HELD_BYTES``); it reads the pending
losses to the host in one transfer and

- stops the run with ``Diverged`` at the first non-finite loss (``trainer.on_nonfinite=stop``),
  naming its step and the last finite loss, or counts the step as skipped (``skip``: the step
  itself was already undone on the device, see ``nonfinite.masked_step``);
- adds the finite steps' losses to the epoch's sum in float64 on the host, step by step, so
  the sums do not depend on where the syncs fell (a resumed run matches an unbroken one bit for
  bit).

The objective's statistics (the correct predictions of a classifier) are summed later, for
many steps at once (one argmax, one comparison): when the epoch's sums are read, or when
``MAX_HELD`` steps or ``MAX_HELD_BYTES`` of outputs and targets are held.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dlx.engine.nonfinite import Diverged

#: what may wait between syncs: this many steps' losses, this many steps' outputs, this many
#: bytes of outputs (the memory held between log steps and epoch ends)
MAX_PENDING = 256
MAX_HELD = 1024
MAX_HELD_BYTES = 64 * 2**20


@dataclass(slots=True)
class _Step:
    step: int
    loss: Tensor  # the objective alone, this rank's
    total: Tensor | None  # what the watch sees, when it is not ``loss``: loss + penalties,
    #                       the mean over ranks under DDP
    out: Tensor  # the model's outputs
    y: Tensor  # the targets
    n: int


class TrainMeter:
    """An epoch's train loss and accuracy, and the non-finite watch across the run."""

    def __init__(
        self,
        device: torch.device,
        stats: Callable[[Tensor, Tensor], Tensor],
        width: int = 1,
        skip_nonfinite: bool = False,
        last_finite: float | None = None,
        skipped: int = 0,
        copy_outputs: bool = False,
    ) -> None:
        self.device = device
        # CUDA graphs (torch.compile's reduce-overhead, max-autotune) reuse their output
        # memory on the next step: the outputs are then copied to be kept
        self.copy_outputs = copy_outputs
        self.stats = stats  # (outputs, targets) -> the objective's sums, ``width`` of them
        self.width = width
        self.skip_nonfinite = skip_nonfinite
        self.last_finite = last_finite
        self.skipped = skipped
        self.pending: list[_Step] = []  # losses not yet read
        self.held: list[tuple[Tensor, Tensor]] = []  # finite steps' (outputs, targets)
        self.held_bytes = 0  # outputs and targets of pending and held steps
        self.reset()

    def reset(self) -> None:
        """Start an epoch's sums (the non-finite watch carries on)."""
        self.pending.clear()
        self.held.clear()
        self.held_bytes = 0
        self.loss_sum = 0.0
        self.seen = 0
        self.sums = torch.zeros(self.width, device=self.device)  # the objective's stats

    def record(
        self, step: int, total: Tensor, loss: Tensor, out: Tensor, y: Tensor, n: int
    ) -> bool:
        """Keep step ``step``'s tensors; True when ``sync()`` is due (too much is waiting)."""
        out = out.detach().clone() if self.copy_outputs else out.detach()
        watched = None if total is loss else total.detach()
        self.pending.append(_Step(step, loss.detach(), watched, out, y, n))
        self.held_bytes += out.nbytes + y.nbytes
        return len(self.pending) >= MAX_PENDING or self.held_bytes >= MAX_HELD_BYTES

    def sync(self) -> None:
        """Read the pending losses (one host transfer) into the sums; raise ``Diverged`` at
        the first non-finite one unless non-finite steps are skipped."""
        if not self.pending:
            return
        steps, self.pending = self.pending, []
        flat = []
        for s in steps:
            flat.append(s.loss)
            if s.total is not None:
                flat.append(s.total)
        values = iter(torch.stack(flat).tolist())
        for s in steps:
            loss = next(values)
            total = loss if s.total is None else next(values)
            if not math.isfinite(total):
                if not self.skip_nonfinite:
                    raise Diverged(
                        f"non-finite loss at step {s.step}; last finite loss {self.last_finite}"
                    )
                self.skipped += 1
                self.held_bytes -= s.out.nbytes + s.y.nbytes
                continue
            self.last_finite = total
            self.loss_sum += loss * s.n
            self.seen += s.n
            self.held.append((s.out, s.y))
        if len(self.held) >= MAX_HELD or self.held_bytes >= MAX_HELD_BYTES:
            self.count_stats()

    def count_stats(self) -> None:
        """Sum the held steps' statistics, all at once (device work, no sync)."""
        if self.held:
            out = torch.cat([o for o, _ in self.held])
            y = torch.cat([t for _, t in self.held])
            self.sums += self.stats(out, y)
        self.held.clear()
        self.held_bytes = sum(s.out.nbytes + s.y.nbytes for s in self.pending)

    def state_dict(self) -> dict[str, Any]:
        """The epoch's sums so far (pending steps folded in first): what a checkpoint keeps
        and what ``epoch_metrics`` reads."""
        self.sync()
        self.count_stats()
        return {
            "loss_sum": torch.tensor(self.loss_sum, dtype=torch.float64),
            "stats": self.sums.double().cpu(),
            "seen": torch.tensor(self.seen),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset()
        self.loss_sum = float(state["loss_sum"])
        self.seen = int(state["seen"])
        stats = state["stats"] if "stats" in state else state["correct"]  # "correct": dlx < 0.3
        self.sums = torch.as_tensor(stats, dtype=torch.float32).reshape(-1).to(self.device)


def epoch_metrics(
    sums: dict[str, Tensor], summarise: Callable[[str, float, list[float], int], dict]
) -> dict[str, float]:
    """The epoch's train metrics from ``TrainMeter.state_dict()`` (or its sum over ranks),
    by the objective's ``summarise``."""
    n = int(sums["seen"])
    loss = float(sums["loss_sum"]) / max(n, 1)
    return summarise("train", loss, sums["stats"].reshape(-1).tolist(), n)
