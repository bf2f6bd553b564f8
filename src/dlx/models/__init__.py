"""The model catalogue: one module per family, each registering its options in ``MODELS``.

Families are imported on first use (``load_families``), so importing ``dlx.models`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from dlx.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from dlx.data.base import DataInfo

MODELS: Registry = Registry("model")
FAMILIES = (
    "alexnet",
    "googlenet",
    "lenet",
    "lstm",
    "mlp",
    "mobilenet",
    "nin",
    "resnet",
    "shufflenet",
    "vgg",
)


def load_families() -> Registry:
    """Import every family module (each registers itself on import) and return ``MODELS``."""
    for family in FAMILIES:
        import_module(f"dlx.models.{family}")
    return MODELS


def build_model(node, info: DataInfo) -> nn.Module:
    """Build the model that config node ``cfg.model`` describes for data shaped like ``info``."""
    return load_families().build(node, info)
