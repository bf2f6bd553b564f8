"""What a task minimises and counts as right: cross-entropy and top-1, or MSE and |err| < tol."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from dlx.data.base import DataInfo

#: regression counts a prediction right within this distance of the target, the tolerance of
#: Hochreiter & Schmidhuber (1997) for the adding problem
REGRESSION_TOLERANCE = 0.04


class Objective:
    """Loss and "accuracy" for the task of ``info``."""

    def __init__(self, info: DataInfo, label_smoothing: float = 0.0) -> None:
        self.regression = info.task == "regression"
        self.smoothing = label_smoothing

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.regression:
            return F.mse_loss(out.squeeze(-1).float(), y.float())
        return F.cross_entropy(out.float(), y, label_smoothing=self.smoothing)

    def hits(self, out: Tensor, y: Tensor) -> Tensor:
        """A bool per sample: top-1 right (against the argmax of soft targets: mixup, cutmix),
        or (regression) |error| < ``REGRESSION_TOLERANCE``."""
        if self.regression:
            return (out.squeeze(-1).float() - y).abs() < REGRESSION_TOLERANCE
        target = y.argmax(-1) if y.is_floating_point() else y
        return out.argmax(-1) == target

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        return self.hits(out, y).sum()
