"""Pieces the model families share: norms, activations (maxout too), conv blocks, common keys.

``NORMS`` and ``ACTIVATIONS`` map the ``model.norm`` / ``model.activation`` choices to module
factories. For conv feature maps ``layer`` is LayerNorm over (C, H, W), i.e. ``GroupNorm(1, C)``
(Wu & He, 2018, §3.1), and ``group`` is GroupNorm with up to 32 groups (their default), fewer
when the channel count needs it so that every group holds at least two channels.

``maxout`` (Goodfellow et al., 2013) is the max of k linear pieces. It is not a drop-in
function: the layer before it must compute k outputs per unit. ``Activation.pieces`` says how
many (k for maxout, 1 otherwise); every builder multiplies the width of the layer that feeds an
activation by it, so a maxout layer has k times the weights of its ReLU twin. In conv blocks
the k pieces of output channel c are the consecutive channels ``c*k … c*k+k-1`` (a
channel-group max); after a grouped or depthwise conv they come from the same group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.registry import check

#: below this image size the new families' stems keep the resolution (stride 1), the usual
#: CIFAR adaptation; at and above it they are the papers' (and torchvision's)
SMALL_INPUT_BELOW = 64


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


class Maxout(nn.Module):
    """Max over groups of ``pieces`` consecutive channels: (N, C*k, ...) -> (N, C, ...)."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        return x.view(n, c // self.pieces, self.pieces, *x.shape[2:]).amax(2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


#: activation name -> factory taking the maxout piece count (ignored by the others)
ACTIVATIONS: dict[str, Callable[[int], nn.Module]] = {
    "relu": lambda k: nn.ReLU(inplace=True),
    "relu6": lambda k: nn.ReLU6(inplace=True),
    "leaky_relu": lambda k: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda k: nn.ELU(inplace=True),
    "gelu": lambda k: nn.GELU(),
    "tanh": lambda k: nn.Tanh(),
    "sigmoid": lambda k: nn.Sigmoid(),
    "maxout": Maxout,
}


@dataclass(frozen=True)
class Activation:
    """An activation choice: ``name`` from ``ACTIVATIONS``; maxout takes ``k`` pieces."""

    name: str = "relu"
    k: int = 2

    @property
    def pieces(self) -> int:
        """Inputs per output unit: the factor by which the feeding layer is widened."""
        return self.k if self.name == "maxout" else 1

    def module(self) -> nn.Module:
        return ACTIVATIONS[self.name](self.k)


ActivationLike = Activation | str | None


def as_activation(act: ActivationLike) -> Activation | None:
    """``"relu"`` -> ``Activation("relu")``; ``None`` (a linear unit) stays ``None``."""
    return Activation(act) if isinstance(act, str) else act


# --- keys every family shares ---------------------------------------------------------------
INITS = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
)


@dataclass
class InitConfig:
    """``model.init`` / ``model.init_std``: the weight init (see ``dlx.models.init``)."""

    init: str = field(default="default", metadata=check(choices=INITS))
    init_std: float = field(default=0.01, metadata=check(gt=0))  # for init=normal


@dataclass
class UnitConfig(InitConfig):
    """``model.activation`` and ``model.maxout_pieces`` beside the init keys."""

    activation: str = field(default="relu", metadata=check(choices=ACTIVATIONS))
    maxout_pieces: int = field(default=2, metadata=check(ge=2))  # k, for activation=maxout

    def act(self, name: str | None = None) -> Activation:
        """The activation (``name`` if given, e.g. an arch's own) with this config's k."""
        return Activation(name or self.activation, self.maxout_pieces)


# --- conv blocks ----------------------------------------------------------------------------
class ConvNormAct(nn.Sequential):
    """``conv -> norm -> act``: the unit every conv family stacks.

    ``activation=None`` leaves the unit linear (conv -> norm). With maxout the conv and the norm
    have ``k * out_channels`` channels and the activation reduces them to ``out_channels``.
    ``kernel_size`` and ``padding`` may be pairs (asymmetric kernels such as 1x3).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int = 1,
        groups: int = 1,
        norm: str = "none",
        activation: ActivationLike = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        act = as_activation(activation)
        wide = out_channels * (act.pieces if act else 1)
        self.conv = nn.Conv2d(
            in_channels, wide, kernel_size, stride, padding, dilation, groups, bias=bias
        )
        self.norm = NORMS[norm](wide)
        self.act = act.module() if act else nn.Identity()


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Side length after a conv or pool with these settings (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def stem_stride(info: DataInfo, stride: int = 2) -> int:
    """The stem's stride: the paper's from ``SMALL_INPUT_BELOW`` up, 1 below it."""
    return stride if info.image_size >= SMALL_INPUT_BELOW else 1


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
