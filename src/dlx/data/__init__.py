"""The data catalogue: one module per source, each registering its options in ``DATASETS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.registry import Registry

if TYPE_CHECKING:
    import torch

    from dlx.data.base import DataModule

DATASETS: Registry = Registry("data")


def catalogue() -> Registry:
    """``DATASETS`` with every source module imported, so that all options are registered."""
    from dlx.data import digits, imagefolder, sequence, synthetic, vision  # noqa: F401

    return DATASETS


def build_data(node, device: torch.device) -> DataModule:
    """Load the dataset that config node ``cfg.data`` describes, batches on ``device``."""
    return catalogue().build(node, device)
