"""The figure every convolutional classifier here follows: body (stem → stages) → head.

``Classifier`` holds the body's named layers and the one classifier head the families share
(global average pool → flatten → dropout → linear). Its parameter names are those of the
``nn.Sequential`` the families built before (``stem.…``, ``stage1.…``, ``fc.weight``), so
checkpoints, layer-wise tags and parameter counts are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn


class Classifier(nn.Module):
    """``forward(x) = head(forward_body(x))``: the body's layers in order, then the head."""

    def __init__(
        self, body: OrderedDict[str, nn.Module], width: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        for name, layer in body.items():
            self.add_module(name, layer)
        self.body = tuple(body)  # the body's layer names, in order
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward_body(self, x: Tensor) -> Tensor:
        for name in self.body:
            x = getattr(self, name)(x)
        return x

    def head(self, x: Tensor) -> Tensor:
        """Global average pool → flatten → dropout → linear: one logit per class."""
        return self.fc(self.dropout(self.flatten(self.avgpool(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_body(x))
