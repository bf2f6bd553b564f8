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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.layers import ACTIVATIONS, NORMS, ConvNormAct, require_image
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
class BasicBlock(nn.Module):
    """Two 3x3 convs; the input is added back before the last activation (Fig. 2)."""

    expansion = 1

    def __init__(
        self, cin: int, width: int, stride: int, shortcut: nn.Module, norm: str, act: str
    ) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = ConvNormAct(
            cin, width, 3, stride=stride, padding=1, norm=norm, activation=act, bias=bias
        )
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=bias)
        self.norm2 = NORMS[norm](width)
        self.shortcut = shortcut
        self.act = ACTIVATIONS[act]()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm2(self.conv2(self.conv1(x))) + self.shortcut(x))

    def last(self) -> tuple[nn.Conv2d, nn.Module]:
        """The branch's last conv and norm (for ``zero_init_residual``)."""
        return self.conv2, self.norm2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride), 1x1 expand to 4x width; input added back (Fig. 5)."""

    expansion = 4

    def __init__(
        self, cin: int, width: int, stride: int, shortcut: nn.Module, norm: str, act: str
    ) -> None:
        super().__init__()
        bias = norm == "none"
        na = {"norm": norm, "activation": act, "bias": bias}
        self.conv1 = ConvNormAct(cin, width, 1, **na)
        self.conv2 = ConvNormAct(width, width, 3, stride=stride, padding=1, **na)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=bias)
        self.norm3 = NORMS[norm](width * self.expansion)
        self.shortcut = shortcut
        self.act = ACTIVATIONS[act]()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm3(self.conv3(self.conv2(self.conv1(x)))) + self.shortcut(x))

    def last(self) -> tuple[nn.Conv2d, nn.Module]:
        """The branch's last conv and norm (for ``zero_init_residual``)."""
        return self.conv3, self.norm3


# --- stems ----------------------------------------------------------------------------------
def imagenet_stem(cin: int, width: int, norm: str, act: str) -> nn.Sequential:
    """7x7 stride-2 conv, 3x3 stride-2 max-pool: 224 -> 56."""
    return nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(
                cin, width, 7, stride=2, padding=3, norm=norm, activation=act, bias=norm == "none"
            ),
            pool=nn.MaxPool2d(3, 2, padding=1),
        )
    )


def cifar_stem(cin: int, width: int, norm: str, act: str) -> nn.Sequential:
    """One 3x3 stride-1 conv, no pooling: small images keep their resolution."""
    return nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(
                cin, width, 3, padding=1, norm=norm, activation=act, bias=norm == "none"
            )
        )
    )


STEMS: dict[str, Callable[[int, int, str, str], nn.Sequential]] = {
    "imagenet": imagenet_stem,
    "cifar": cifar_stem,
}


# --- architectures --------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    block: type[BasicBlock | Bottleneck]
    depths: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...]  # block width per stage (Bottleneck outputs 4x)
    stem: str
    shortcut: str


IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
ARCHS: dict[str, Spec] = {
    "resnet18": Spec(BasicBlock, (2, 2, 2, 2), IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet34": Spec(BasicBlock, (3, 4, 6, 3), IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet50": Spec(Bottleneck, (3, 4, 6, 3), IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet101": Spec(Bottleneck, (3, 4, 23, 3), IMAGENET_WIDTHS, "imagenet", "B"),
    "resnet152": Spec(Bottleneck, (3, 8, 36, 3), IMAGENET_WIDTHS, "imagenet", "B"),
    **{
        f"resnet{6 * n + 2}": Spec(BasicBlock, (n, n, n), CIFAR_WIDTHS, "cifar", "A")
        for n in (3, 5, 7, 9, 18)
    },
}


@dataclass
class ResNetConfig:
    name: str = "resnet"
    arch: str = field(default="resnet20", metadata=check(choices=ARCHS))
    stem: str | None = field(default=None, metadata=check(choices=STEMS))
    norm: str = field(default="batch", metadata=check(choices=NORMS))
    activation: str = field(default="relu", metadata=check(choices=ACTIVATIONS))
    zero_init_residual: bool = False
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # before the final FC


@MODELS.register("resnet", ResNetConfig)
def resnet(cfg: ResNetConfig, info: DataInfo) -> nn.Module:
    """ResNet for ``info``'s channels, image size and classes."""
    require_image(info, "resnet")
    spec = ARCHS[cfg.arch]
    stem = STEMS[cfg.stem or spec.stem]
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=stem(info.channels, spec.widths[0], cfg.norm, cfg.activation)
    )
    cin = spec.widths[0]
    for i, (width, depth) in enumerate(zip(spec.widths, spec.depths), start=1):
        blocks = []
        for j in range(depth):
            stride = 2 if i > 1 and j == 0 else 1
            cout = width * spec.block.expansion
            if stride == 1 and cin == cout:
                shortcut: nn.Module = nn.Identity()
            else:
                shortcut = SHORTCUTS[spec.shortcut](cin, cout, stride, cfg.norm)
            blocks.append(spec.block(cin, width, stride, shortcut, cfg.norm, cfg.activation))
            cin = cout
        layers[f"stage{i}"] = nn.Sequential(*blocks)
    layers.update(
        avgpool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(),
        dropout=nn.Dropout(cfg.dropout),
        fc=nn.Linear(cin, info.num_classes),
    )
    model = nn.Sequential(layers)
    init_weights(model, zero_init_residual=cfg.zero_init_residual)
    return model


def init_weights(model: nn.Module, *, zero_init_residual: bool) -> None:
    """torchvision's init: He-normal (fan-out) convs, zero conv biases; optionally zero the
    residual branches' last scale (norm gamma, or the conv itself when there is no norm)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if not zero_init_residual:
        return
    for m in model.modules():
        if isinstance(m, BasicBlock | Bottleneck):
            conv, norm = m.last()
            scale = getattr(norm, "weight", None)
            nn.init.zeros_(scale if scale is not None else conv.weight)
