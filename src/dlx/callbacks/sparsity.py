"""``trainer.log_weight_sparsity=T``: how sparse the weights are, at every epoch's end.

``weights/near_zero`` is the share of the layers' weights (matrices and kernels, not biases or
norm scales) whose magnitude is below ``T``; ``weights/abs_mean`` their mean magnitude. Both
join the epoch's metrics (``metrics.csv``, ``dlx report``): the picture of L1's sparsity (many
weights at zero) against L2's shrinkage (all smaller, few at zero).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from dlx.callbacks import Callback
from dlx.callbacks.grad_norms import layer_weights

if TYPE_CHECKING:
    from dlx.engine.run import Run

NEAR_ZERO = "weights/near_zero"
ABS_MEAN = "weights/abs_mean"


def sparsity(weights: list[torch.Tensor], threshold: float) -> tuple[float, float]:
    """The share of entries with ``|w| < threshold`` and the mean ``|w|``, over all tensors."""
    flat = torch.cat([w.detach().abs().flatten().float() for w in weights])
    return float((flat < threshold).float().mean()), float(flat.mean())


class WeightSparsity(Callback):
    """The weights' near-zero share and mean magnitude in each epoch's metrics."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        weights = list(layer_weights(run.model).values())
        if weights:
            metrics[NEAR_ZERO], metrics[ABS_MEAN] = sparsity(weights, self.threshold)
