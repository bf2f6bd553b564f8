"""ResNet (He, Zhang, Ren & Sun, 2016, "Deep residual learning for image recognition").

A stem, stages of residual blocks (the first block of each later stage halves the map with
stride 2 and widens it), global average pooling and one FC layer.

* ImageNet family (§3.4, Table 1): ``resnet18``/``34`` (BasicBlock) and ``resnet50``/``101``/
  ``152`` (Bottleneck), widths 64-128-256-512, projection shortcuts where the shape changes
  (option B). Layout and init are torchvision's, so at 224x224 with 3 channels and 1000 classes
  the parameter counts match (resnet18: 11,689,512; resnet50: 25,557,032). As in torchvision
  (ResNet v1.5) a Bottleneck strides in its 3x3 conv, not in its first 1x1.
* CIFAR family (§4.2): ``resnet20``/``32``/``44``/``56``/``110`` = 6n+2 layers, three stages
  of n BasicBlocks with 16-32-64 maps, parameter-free shortcuts (option A: subsample by the
  stride, zero-pad the new channels), as in the paper's CIFAR-10 runs (resnet20: 0.27M).

Knobs:

* ``stem``: ``imagenet`` (7x7 stride-2 conv, 3x3 stride-2 max-pool) or ``cifar`` (3x3 stride-1
  conv, no pool); ``null`` uses the arch's own (imagenet for resnet18-152, cifar for
  resnet20-110). ``stem=cifar`` with resnet18 is the usual CIFAR ResNet-18.
* ``norm``: a conv followed by a norm has no bias (the norm's shift replaces it); with
  ``norm=none`` every conv keeps its bias.
* ``zero_init_residual``: each block's last norm starts with gamma = 0, so blocks start as the
  identity (Goyal et al., 2017). With ``norm=none`` there is no gamma, so the block's last conv
  starts at zero instead (SkipInit, De & Smith, 2020).
* ``dropout``: before the final FC layer (not in the paper; default 0).

Convolution variants, each in the network where it is canonical:

* ``arch=resnext50_32x4d`` / ``resnext101_32x8d`` / ``resnext101_64x4d`` (Xie et al., 2017):
  grouped 3x3 convs, cardinality x width per group; ``wide_resnet50_2`` / ``101_2``
  (Zagoruyko & Komodakis, 2016) double the bottleneck width. Counts are torchvision's
  (resnext50_32x4d: 25,028,904).
* ``se=true`` (Hu, Shen & Sun, 2018): squeeze-and-excitation (reduction 16) on every block's
  branch before the sum; SE-ResNet-50 has 28,088,024 parameters (the paper's ~28.1M).
* ``dilation``: ImageNet forms take torchvision's ``replace_stride_with_dilation`` (e.g.
  ``[false,true,true]``: stages 3-4 at 1/8 resolution, rates 2 and 4; for BasicBlock archs
  too, which torchvision refuses); CIFAR forms take one rate per stage (e.g. ``[1,2,5]``),
  refused when the rates share a factor (see ``dilation_plan``).
* ``shortcut``: ``null`` (the arch's own: A for CIFAR, B for ImageNet forms), ``A``, ``B`` or
  ``none``: no residual connections at all, the "plain" nets of §4.1 (Fig. 4, left).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS
from dlx.models.blocks import SqueezeExcite
from dlx.models.dilation import stage_rates
from dlx.models.init import initialize
from dlx.models.layers import NORMS, Activation, ConvNormAct, UnitConfig, require_image
from dlx.registry import check


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


# --- stems ----------------------------------------------------------------------------------
def imagenet_stem(cin: int, width: int, unit: Unit) -> nn.Sequential:
    """7x7 stride-2 conv, 3x3 stride-2 max-pool: 224 -> 56."""
    return nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(
                cin,
                width,
                7,
                stride=2,
                padding=3,
                norm=unit.norm,
                activation=unit.act,
                bias=unit.bias,
            ),
            pool=nn.MaxPool2d(3, 2, padding=1),
        )
    )


def cifar_stem(cin: int, width: int, unit: Unit) -> nn.Sequential:
    """One 3x3 stride-1 conv, no pooling: small images keep their resolution."""
    return nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(
                cin, width, 3, padding=1, norm=unit.norm, activation=unit.act, bias=unit.bias
            )
        )
    )


STEMS: dict[str, Callable[[int, int, Unit], nn.Sequential]] = {
    "imagenet": imagenet_stem,
    "cifar": cifar_stem,
}


# --- architectures --------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    block: type[BasicBlock | Bottleneck]
    depths: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # planes per stage (Bottleneck outputs 4x)
    stem: str  # also the arch's form: imagenet or cifar
    shortcut: str
    groups: int = 1  # ResNeXt's cardinality
    width_per_group: int = 64  # its bottleneck width (planes * width_per_group/64 * groups)


IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
B3463, B34233 = (3, 4, 6, 3), (3, 4, 23, 3)
ARCHS: dict[str, Spec] = {
    "resnet18": Spec(BasicBlock, (2, 2, 2, 2), IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet34": Spec(BasicBlock, B3463, IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet50": Spec(Bottleneck, B3463, IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet101": Spec(Bottleneck, B34233, IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet152": Spec(Bottleneck, (3, 8, 36, 3), IMAGENET_WIDTHS, "imagenet", "B"),
    "resnext50_32x4d": Spec(Bottleneck, B3463, IMAGENET_WIDTHS, "imagenet", "B", 32, 4),
    "resnext101_32x8d": Spec(Bottleneck, B34233, IMAGENET_WIDTHS, "imagenet", "B", 32, 8),
    "resnext101_64x4d": Spec(Bottleneck, B34233, IMAGENET_WIDTHS, "imagenet", "B", 64, 4),
    "wide_resnet50_2": Spec(Bottleneck, B3463, IMAGENET_WIDTHS, "imagenet", "B", 1, 128),
    "wide_resnet101_2": Spec(Bottleneck, B34233, IMAGENET_WIDTHS, "imagenet", "B", 1, 128),
    **{
        f"resnet{6 * n + 2}": Spec(BasicBlock, (n, n, n), CIFAR_WIDTHS, "cifar", "A")
        for n in (3, 5, 7, 9, 18)
    },
}
SE_REDUCTION = 16  # Hu et al.'s r


@dataclass
class ResNetConfig(UnitConfig):
    name: str = "resnet"
    arch: str = field(default="resnet20", metadata=check(choices=ARCHS))
    stem: str | None = field(default=None, metadata=check(choices=STEMS))
    norm: str = field(default="batch", metadata=check(choices=NORMS))
    shortcut: str | None = field(default=None, metadata=check(choices=[*SHORTCUTS, "none"]))
    se: bool = False
    dilation: list[Any] | None = None  # see dilation_plan
    zero_init_residual: bool = False
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # before the final FC

    def validate(self, prefix: str) -> None:
        """Cross-key checks: the dilation list for the arch's form; residual-only options."""
        dilation_plan(self, prefix)
        if self.shortcut == "none" and self.zero_init_residual:
            raise UsageError(
                f"{prefix}.zero_init_residual=true needs shortcuts; with {prefix}.shortcut=none "
                "every block would start at zero"
            )


def dilation_plan(cfg: ResNetConfig, prefix: str = "model") -> list[tuple[int, int, int]]:
    """Per stage: (stride, the first block's first rate, every other conv's rate)."""
    spec = ARCHS[cfg.arch]
    return stage_rates(cfg.dilation, len(spec.depths), spec.stem == "imagenet", cfg.arch, prefix)


@MODELS.register("resnet", ResNetConfig)
def resnet(cfg: ResNetConfig, info: DataInfo) -> nn.Module:
    """ResNet for ``info``'s channels, image size and classes."""
    require_image(info, "resnet")
    spec = ARCHS[cfg.arch]
    unit = Unit(cfg.norm, cfg.act(), cfg.se, spec.groups, spec.width_per_group)
    shortcut_kind = cfg.shortcut or spec.shortcut
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=STEMS[cfg.stem or spec.stem](info.channels, spec.widths[0], unit)
    )
    cin = spec.widths[0]
    plan = dilation_plan(cfg)
    for i, (planes, depth, (stride, first_rate, rate)) in enumerate(
        zip(spec.widths, spec.depths, plan), start=1
    ):
        blocks = []
        for j in range(depth):
            s, d = (stride, (first_rate, rate)) if j == 0 else (1, (rate, rate))
            cout = planes * spec.block.expansion
            shortcut: nn.Module | None = None
            if shortcut_kind == "none":
                pass
            elif s == 1 and cin == cout:
                shortcut = nn.Identity()
            else:
                shortcut = SHORTCUTS[shortcut_kind](cin, cout, s, cfg.norm)
            blocks.append(spec.block(cin, planes, s, d, shortcut, unit))
            cin = cout
        layers[f"stage{i}"] = nn.Sequential(*blocks)
    layers.update(
        avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        dropout=nn.Dropout(cfg.dropout),
        fc=nn.Linear(cin, info.num_classes),
    )
    model = nn.Sequential(layers)
    init_weights(model)
    initialize(model, cfg.init, cfg.init_std, cfg.activation)
    if cfg.zero_init_residual:
        zero_residuals(model)
    return model


def init_weights(model: nn.Module) -> None:
    """torchvision's init: He-normal (fan-out) convs, zero conv biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_residuals(model: nn.Module) -> None:
    """Zero the residual branches' last scale (norm gamma, or the conv when there is no norm)."""
    for m in model.modules():
        if isinstance(m, BasicBlock | Bottleneck):
            conv, norm = m.last()
            scale = getattr(norm, "weight", None)
            nn.init.zeros_(scale if scale is not None else conv.weight)
