"""The data catalogue: one module per source, each registering its options in ``DATASETS``
(found and imported on the first lookup)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.registry import Registry

if TYPE_CHECKING:
    import torch

    from dlx.data.base import DataModule

DATASETS: Registry = Registry("data", package="dlx.data")


def build_data(node, device: torch.device) -> DataModule:
    """Load the dataset that config node ``cfg.data`` describes, batches on ``device``
    (``data.train_fraction``: a seeded part of its training split)."""
    from dlx.data.base import keep_train_fraction

    cfg = DATASETS.parse(node)
    data = DATASETS.get(cfg.name).builder(cfg, device)
    fraction = getattr(cfg, "train_fraction", 1.0)
    keep_train_fraction(data, fraction, getattr(cfg, "split_seed", 0))
    return data
