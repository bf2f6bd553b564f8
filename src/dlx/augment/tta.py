"""Test-time augmentation (``trainer.tta``): ``none``, or ``flip``, the mean of the logits of
x and of its horizontal mirror image."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

TTA: dict[str, Callable[[nn.Module, Tensor], Tensor]] = {
    "none": lambda model, x: model(x),
    "flip": lambda model, x: (model(x) + model(x.flip(-1))) / 2,
}


def tta_forward(model: nn.Module, x: Tensor, mode: str = "none") -> Tensor:
    """The model's logits on ``x`` under test-time augmentation ``mode``."""
    return TTA[mode](model, x)
