"""Evaluation: a model's metrics on a split, by its objective (validation, test, ``dlx eval``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from dlx.augment.tta import tta_forward
from dlx.data.base import DataModule
from dlx.engine.inputs import Inputs
from dlx.engine.objective import Objective


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: DataModule,
    split: str,
    inputs: Inputs,
    objective: Objective,
    autocast: Callable[[], AbstractContextManager[object]],
    limit: int | None = None,
    tta: str = "none",
    check_stop: Callable[[], None] | None = None,
    batch_size: int | None = None,
) -> dict[str, float]:
    """The objective's metrics (mean loss, accuracy, …) of ``model`` on ``split`` (never
    augmented; ``tta`` opt-in), in batches of ``batch_size`` (default the data's);
    ``check_stop`` is called after each batch (it raises to stop, e.g. on Ctrl-C).
    ``limit`` counts batches of the data's own size."""
    model.eval()
    device = inputs.mean.device
    loss_sum = torch.zeros((), device=device)
    stats = torch.zeros(objective.width, device=device)
    n = 0
    if limit is not None:  # limit_val_batches counts batches of data.batch_size
        batch_size = None
    for i, (xb, yb) in enumerate(data.batches(split, batch_size=batch_size)):
        if limit is not None and i >= limit:
            break
        x, y = inputs(xb, yb)
        with autocast():
            out = tta_forward(model, x, tta)
        loss_sum += objective.loss(out, y) * len(y)
        stats += objective.stats(out, y)
        n += len(y)
        if check_stop is not None:
            check_stop()
    sums = torch.cat([loss_sum.reshape(1), stats]).tolist()  # one host transfer
    return objective.summarise(split, sums[0] / max(n, 1), sums[1:], n)
