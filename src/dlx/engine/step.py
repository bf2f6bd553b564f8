"""One optimizer step, chosen once per run by ``trainer.on_nonfinite``.

``PlainStep``: forward, loss plus penalties, backward, clip (and measure on log steps),
optimizer step, constraints, schedule. ``SkipNonfiniteStep``: the same, except that a step
whose loss is not finite changes nothing, decided on the device without a host sync
(``dlx.engine.nonfinite``). The loop never asks which one it has.

With ``trainer.accumulate_grad_batches=K`` a step takes K batches at once and runs forward
and backward on each in turn, each loss divided by K, before the one optimizer step: the
gradient of the mean loss over the K batches, as one step on the K-times batch would have it
(under DDP the gradients are all-reduced once, on the last). The forward and backward for
the chosen K is picked once, too.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dlx.engine import distributed
from dlx.engine.nonfinite import keep_state_on_device, masked_step, zero_nonfinite_grads
from dlx.engine.optstats import clip_and_measure, total_norm
from dlx.engine.state import StepResult

if TYPE_CHECKING:
    from dlx.engine.run import Run


class PlainStep:
    """forward → loss (+ penalties) → backward → clip → optimizer step → constraints."""

    def __init__(self, run: Run, accumulate: int = 1) -> None:
        self.run = run
        self.params = [p for p in run.model.parameters() if p.requires_grad]
        self.k = accumulate
        self.forward_backward = self._whole if accumulate == 1 else self._accumulated

    def __call__(self, x: Tensor, y: Tensor, log: bool) -> StepResult:
        r = self.run
        r.optimizer.zero_grad(set_to_none=True)
        penalties = r.regs.penalties() if r.regs.has_penalty else {}
        out, loss, total = self.forward_backward(x, y, penalties)
        # the mean over ranks, so every rank takes the same finite/non-finite decision
        total = distributed.all_mean(r.ctx, total)
        finite = self.guard(total)
        if r.regs.clip is not None or log:
            r.scaler.unscale_(r.optimizer)  # clip and measure the true gradients
        logged: dict[str, Tensor | float] = {**penalties}
        logged.update(clip_and_measure(self.params, r.regs.clip, measure=log))
        self.optimizer_step(finite)
        r.scaler.update()
        r.regs.after_step()
        if log:  # the lr this step used, before the schedule moves it
            logged["opt/lr"] = r.optimizer.param_groups[0]["lr"]
            logged["opt/weight_norm"] = total_norm(self.params)
        r.schedule.step_batch()
        return StepResult(loss, total, out, y, len(y), logged if log else {})

    def _whole(
        self, x: Tensor, y: Tensor, penalties: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward and backward on the batch: (outputs, loss, loss + penalties)."""
        r = self.run
        with r.autocast():
            out = r.train_model(x)
        loss = r.objective.loss(out, y)
        total = loss + sum(penalties.values()) if penalties else loss
        r.scaler.scale(total).backward()
        return out, loss, total

    def _accumulated(
        self, x: Tensor, y: Tensor, penalties: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward and backward on each of K equal chunks, losses divided by K; the
        penalties (which do not depend on the data) once."""
        r, k = self.run, self.k
        outs, losses = [], []
        for j, (xc, yc) in enumerate(zip(x.chunk(k), y.chunk(k), strict=True)):
            last = j == k - 1
            with nullcontext() if last or not r.ctx.enabled else r.train_model.no_sync():
                with r.autocast():
                    out = r.train_model(xc)
                loss = r.objective.loss(out, yc)
                extra = sum(penalties.values()) if penalties and last else 0
                r.scaler.scale(loss / k + extra).backward()
            outs.append(out.detach())
            losses.append(loss.detach())
        loss = torch.stack(losses).mean()
        total = loss + sum(p.detach() for p in penalties.values()) if penalties else loss
        return torch.cat(outs), loss, total

    def guard(self, total: Tensor) -> Tensor | None:
        """Prepare the gradients before clipping; the flag ``optimizer_step`` acts on."""
        return None

    def optimizer_step(self, finite: Tensor | None) -> None:
        self.run.scaler.step(self.run.optimizer)


class SkipNonfiniteStep(PlainStep):
    """A non-finite step is a no-op on the device: gradients zeroed, parameters and optimizer
    state put back (``trainer.on_nonfinite=skip``; the lr schedule still advances)."""

    def __init__(self, run: Run, accumulate: int = 1) -> None:
        super().__init__(run, accumulate)
        if run.device.type == "cuda":
            keep_state_on_device(run.optimizer)

    def guard(self, total: Tensor) -> Tensor | None:
        finite = torch.isfinite(total.detach())
        zero_nonfinite_grads(self.params, finite)
        return finite

    def optimizer_step(self, finite: Tensor | None) -> None:
        assert finite is not None
        masked_step(self.run.optimizer, self.params, finite, self.run.scaler.step)


#: ``trainer.on_nonfinite`` -> the step class
STEPS: dict[str, type[PlainStep]] = {"stop": PlainStep, "skip": SkipNonfiniteStep}
