"""``trainer.log_grad_norms=true``: each layer's gradient norm, ``grads/norm/<layer>``.

At every log step (``trainer.log_every_n_steps``, where the loop syncs anyway) the L2 norm of
each layer's weight gradient is read in one transfer and logged to TensorBoard; at the epoch's
end the mean over its log steps joins the epoch's metrics (``metrics.csv``, ``dlx report``).
The picture of vanishing gradients: with saturating activations the first layers' norms are
orders of magnitude below the last ones'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dlx.callbacks import Callback

if TYPE_CHECKING:
    from torch import nn

    from dlx.engine.run import Run

PREFIX = "grads/norm/"


def layer_weights(model: nn.Module) -> dict[str, torch.nn.Parameter]:
    """Each layer's weight by the layer's name (``fc1.linear``), in the model's order."""
    return {
        name.removesuffix(".weight"): p
        for name, p in model.named_parameters()
        if name.endswith("weight") and p.requires_grad and p.dim() > 1
    }


class GradNorms(Callback):
    """Per-layer gradient norms at log steps, their epoch means in the epoch's metrics."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def on_fit_start(self, run: Run) -> None:
        self.weights = layer_weights(run.model)

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        self.sums, self.count = {}, 0

    def on_log(self, run: Run, scalars: dict[str, float]) -> None:
        named = [(n, p.grad) for n, p in self.weights.items() if p.grad is not None]
        if not named:
            return
        norms = torch.stack([g.detach().float().norm() for _, g in named]).tolist()
        values = {PREFIX + n: v for (n, _), v in zip(named, norms, strict=True)}
        run.board.scalars(values, run.state.step)
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        if self.count:
            metrics.update({k: v / self.count for k, v in self.sums.items()})
