"""The model catalogue: one module per family, each registering its options in ``MODELS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from dlx.data.base import DataInfo

MODELS: Registry = Registry("model")


def build_model(node, info: DataInfo) -> nn.Module:
    """Build the model that config node ``cfg.model`` describes for data shaped like ``info``."""
    from dlx.models import lenet  # noqa: F401  (each import registers a family)

    return MODELS.build(node, info)
