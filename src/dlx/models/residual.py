"""ResNet's residual blocks (He et al., 2016): the shortcuts (options A and B), the block's
build plan (``Unit``), ``BasicBlock`` and ``Bottleneck``; ``dlx.models.resnet`` stacks them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from dlx.models.blocks import SqueezeExcite
from dlx.models.layers import NORMS, Activation, ConvNormAct

SE_REDUCTION = 16  # Hu et al.'s r


# --- shortcuts: used where a block changes the map's shape ----------------------------------
class PadShortcut(nn.Module):
    """Option A: keep every ``stride``-th pixel and zero-pad the extra channels (no params)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = cout - cin, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


def projection(cin: int, cout: int, stride: int, norm: str) -> nn.Module:
    """Option B: a 1x1 conv (with the stride) and a norm."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, 1, stride, bias=norm == "none"),
            norm=NORMS[norm](cout),
        )
    )


SHORTCUTS: dict[str, Callable[[int, int, int, str], nn.Module]] = {
    "A": lambda cin, cout, stride, norm: PadShortcut(cin, cout, stride),
    "B": projection,
}


# --- blocks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """How every block is built: its norm and activation, SE, and (ResNeXt) grouped 3x3s."""

    norm: str
    act: Activation
    se: bool = False
    groups: int = 1
    base_width: int = 64

    @property
    def bias(self) -> bool:
        """A conv followed by a norm has no bias (the norm's shift replaces it)."""
        return self.norm == "none"


class Residual(nn.Module):
    """``act(se(branch(x)) + shortcut(x))``; without a shortcut (a plain net) ``act(branch(x))``.

    SE weighs the branch's channels before the sum (Hu et al., 2018, Fig. 3). With maxout the
    branch ends in k pieces per channel; the shortcut is added to each piece before their max.
    """

    def join(self, shortcut: nn.Module | None, unit: Unit, channels: int) -> None:
        """Set the parts after the branch (called last, so convs register first)."""
        pieces = unit.act.pieces
        self.out_channels = channels
        self.se = SqueezeExcite(channels * pieces, SE_REDUCTION) if unit.se else nn.Identity()
        self.shortcut = shortcut
        self.pieces = pieces
        self.act = unit.act.module()

    def branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out = self.se(self.branch(x))
        if self.shortcut is not None:
            s = self.shortcut(x)
            out = out + (s.repeat_interleave(self.pieces, 1) if self.pieces > 1 else s)
        return self.act(out)


class BasicBlock(Residual):
    """Two 3x3 convs; the input is added back before the last activation (Fig. 2)."""

    expansion = 1

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int,
        dilation: tuple[int, int],
        shortcut: nn.Module | None,
        unit: Unit,
    ) -> None:
        super().__init__()
        d1, d2 = dilation  # the first conv's rate, the second's
        self.conv1 = ConvNormAct(
            cin,
            planes,
            3,
            stride=stride,
            padding=d1,
            dilation=d1,
            norm=unit.norm,
            activation=unit.act,
            bias=unit.bias,
        )
        self.conv2 = nn.Conv2d(
            planes, planes * unit.act.pieces, 3, padding=d2, dilation=d2, bias=unit.bias
        )
        self.norm2 = NORMS[unit.norm](planes * unit.act.pieces)
        self.join(shortcut, unit, planes)

    def branch(self, x: Tensor) -> Tensor:
        return self.norm2(self.conv2(self.conv1(x)))

    def last(self) -> tuple[nn.Conv2d, nn.Module]:
        """The branch's last conv and norm (for ``zero_init_residual``)."""
        return self.conv2, self.norm2


class Bottleneck(Residual):
    """1x1 reduce, 3x3 (with the stride; in ResNeXt grouped, Xie et al., 2017, Fig. 3c), 1x1
    expand to 4x planes; the input is added back (Fig. 5)."""

    expansion = 4

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int,
        dilation: tuple[int, int],
        shortcut: nn.Module | None,
        unit: Unit,
    ) -> None:
        super().__init__()
        width = planes * unit.base_width // 64 * unit.groups
        cout = planes * self.expansion * unit.act.pieces
        d = dilation[0]  # one 3x3: the block's first rate, as torchvision
        na = {"norm": unit.norm, "activation": unit.act, "bias": unit.bias}
        self.conv1 = ConvNormAct(cin, width, 1, **na)
        self.conv2 = ConvNormAct(
            width, width, 3, stride=stride, padding=d, dilation=d, groups=unit.groups, **na
        )
        self.conv3 = nn.Conv2d(width, cout, 1, bias=unit.bias)
        self.norm3 = NORMS[unit.norm](cout)
        self.join(shortcut, unit, planes * self.expansion)

    def branch(self, x: Tensor) -> Tensor:
        return self.norm3(self.conv3(self.conv2(self.conv1(x))))

    def last(self) -> tuple[nn.Conv2d, nn.Module]:
        """The branch's last conv and norm (for ``zero_init_residual``)."""
        return self.conv3, self.norm3
