"""Pieces the model families share: norm and activation registries, conv blocks, input checks.

``NORMS`` and ``ACTIVATIONS`` map the ``model.norm`` / ``model.activation`` choices to module
factories. For conv feature maps ``layer`` is LayerNorm over (C, H, W), i.e. ``GroupNorm(1, C)``
(Wu & He, 2018, §3.1), and ``group`` is GroupNorm with up to 32 groups (their default), fewer
when the channel count needs it so that every group holds at least two channels.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError


def group_count(channels: int, most: int = 32) -> int:
    """The largest divisor of ``channels`` up to ``most`` that leaves >= 2 channels per group."""
    return max(
        (g for g in range(1, most + 1) if channels % g == 0 and channels // g >= 2), default=1
    )


NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "layer": lambda c: nn.GroupNorm(1, c),
    "group": lambda c: nn.GroupNorm(group_count(c), c),
    "none": lambda c: nn.Identity(),
}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}


class ConvNormAct(nn.Sequential):
    """``conv -> norm -> act``: the unit every conv family stacks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        norm: str = "none",
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.norm = NORMS[norm](out_channels)
        self.act = ACTIVATIONS[activation]()


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side length after a conv or pool with these settings (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def require_image(info: DataInfo, model: str) -> None:
    """Raise a one-line ``UsageError`` unless ``info`` describes images."""
    if info.kind != "image":
        raise UsageError(f"model={model} needs image data; data={info.name} is a {info.kind} task")


def init_conv_linear(model: nn.Module) -> None:
    """He-normal conv weights (fan-out, as torchvision), N(0, 0.01) linear weights, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
