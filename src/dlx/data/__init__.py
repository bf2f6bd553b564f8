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
    """Load the dataset that config node ``cfg.data`` describes, batches on ``device``; an
    image dataset's reading keys (``data.sequence``, ``data.permute``) go into its info, and
    ``data.train_fraction`` keeps a seeded part of its training split."""
    from dlx.data.base import ReadingConfig, keep_train_fraction, reading
    from dlx.data.cache import CACHE, key_of

    cfg = DATASETS.parse(node)
    # loaded once per process for the same config: the trials of a sweep share it
    data = CACHE.get(key_of(cfg, device), lambda: DATASETS.get(cfg.name).builder(cfg, device))
    if isinstance(cfg, ReadingConfig):
        data.info = reading(data.info, cfg)
    keep_train_fraction(data, getattr(cfg, "train_fraction", 1.0), getattr(cfg, "split_seed", 0))
    return data
