"""Seeing the pipeline: one augmented training batch as an image grid in TensorBoard."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

#: the TensorBoard image tag
TAG = "augment/batch"


def preview_grid(x: Tensor, y: Tensor, augment: Any, seed: int, max_images: int = 64) -> Tensor:
    """A (3, H, W) grid in [0, 1] of ``x`` (uint8 batch) augmented by a fork of ``augment``.

    The fork has its own generators, so the training stream is not touched.
    """
    from torchvision.utils import make_grid

    x = x[:max_images].float().div(255)
    if augment is not None:
        x, _ = augment.fork(seed)(x, y[:max_images])
    return make_grid(x.detach().float().cpu(), nrow=8, padding=2, pad_value=1.0)


def log_preview(tb: Any, data: Any, augment: Any, seed: int) -> None:
    """Write one augmented training batch to ``tb`` under ``TAG`` (step 0).

    On a DataLoader path the batch is already augmented per sample by the loader's workers.
    """
    xb, yb = next(iter(data.batches("train", shuffle=True, seed=seed)))
    with torch.no_grad():
        grid = preview_grid(xb, yb, augment, seed=seed + 1)
    tb.writer.add_image(TAG, grid, 0)
