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

from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS
from dlx.models.classifier import Classifier
from dlx.models.dilation import stage_rates
from dlx.models.init import initialize
from dlx.models.layers import NORMS, ConvNormAct, UnitConfig, require_image
from dlx.models.residual import SHORTCUTS, BasicBlock, Bottleneck, Unit
from dlx.registry import check


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


class ResNet(Classifier):
    """The paper's figure: ``stem → stage1 … stageN → head`` (pool, flatten, dropout, FC)."""

    def __init__(
        self, stem: nn.Module, stages: list[nn.Sequential], num_classes: int, dropout: float
    ) -> None:
        body = OrderedDict(stem=stem, **{f"stage{i}": s for i, s in enumerate(stages, 1)})
        width = stages[-1][-1].out_channels
        super().__init__(body, width, num_classes, dropout)

    @property
    def stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.body[1:]]

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def stages(cfg: ResNetConfig, unit: Unit) -> list[nn.Sequential]:
    """The arch's stages of residual blocks: each later one's first block strides (or
    dilates) and widens; its shortcut is the chosen kind where the shape changes."""
    spec = ARCHS[cfg.arch]
    kind = cfg.shortcut or spec.shortcut
    cin, out = spec.widths[0], []
    plan = zip(spec.widths, spec.depths, dilation_plan(cfg))
    for planes, depth, (stride, first_rate, rate) in plan:
        blocks = []
        for j in range(depth):
            s, d = (stride, (first_rate, rate)) if j == 0 else (1, (rate, rate))
            cout = planes * spec.block.expansion
            shortcut: nn.Module | None = None
            if kind != "none":
                same = s == 1 and cin == cout
                shortcut = nn.Identity() if same else SHORTCUTS[kind](cin, cout, s, cfg.norm)
            blocks.append(spec.block(cin, planes, s, d, shortcut, unit))
            cin = cout
        out.append(nn.Sequential(*blocks))
    return out


@MODELS.register("resnet", ResNetConfig)
def resnet(cfg: ResNetConfig, info: DataInfo) -> nn.Module:
    """ResNet for ``info``'s channels, image size and classes."""
    require_image(info, "resnet")
    spec = ARCHS[cfg.arch]
    unit = Unit(cfg.norm, cfg.act(), cfg.se, spec.groups, spec.width_per_group)
    stem = STEMS[cfg.stem or spec.stem](info.channels, spec.widths[0], unit)
    model = ResNet(stem, stages(cfg, unit), info.num_classes, cfg.dropout)
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
