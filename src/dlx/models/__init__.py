"""The model catalogue: one module per family, each registering its options in ``MODELS``.

The family modules are found and imported on the first lookup, so importing ``dlx.models``
stays cheap and a new family is one new file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlx.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from dlx.data.base import DataInfo

MODELS: Registry = Registry("model", package="dlx.models")


def build_model(node, info: DataInfo) -> nn.Module:
    """Build the model that config node ``cfg.model`` describes for data shaped like ``info``;
    a model whose option brings a task (``register(..., task=…)``) carries it as ``.task``."""
    cfg = MODELS.parse(node)
    model = MODELS.get(cfg.name).builder(cfg, info)
    task = MODELS.get(cfg.name).task
    if task is not None:
        model.task = task
    return model
