"""MobileNets: depthwise-separable convolutions.

A standard kxk conv from C to C' channels costs k²·C·C' MACs per pixel. Its depthwise-separable
replacement filters each channel alone (a kxk depthwise conv, ``groups=C``: k²·C) and then mixes
channels with a 1x1 pointwise conv (C·C'): 1/C' + 1/k² of the cost, about 8-9x less for 3x3
(Howard et al., 2017, §3.1). ``dlx summary`` shows the two parts' MACs side by side.

* ``arch=mobilenet_v1`` (Howard et al., 2017, Table 1): a 3x3 stride-2 conv to 32 maps, then 13
  depthwise-separable blocks (dw 3x3 -> BN -> ReLU -> pw 1x1 -> BN -> ReLU) up to 1024 maps,
  global average pooling and one FC layer: 4,231,976 parameters at 224x224x3 with 1000 classes
  (the paper's 4.2M; Keras's MobileNet's trainable count).
* ``arch=mobilenet_v2`` (Sandler et al., 2018, Table 2): inverted residuals -- a 1x1 expansion
  by t, a 3x3 depthwise conv, a *linear* 1x1 projection (no activation: the linear
  bottleneck), with the input added back where the shape allows -- ReLU6, a last 1x1 conv to
  1280 maps, dropout and the FC layer. Layout and init are torchvision's: 3,504,872 parameters.

``width_mult`` is the paper's width multiplier alpha (channels rounded to multiples of 8, as
torchvision). ``activation: null`` uses the arch's own (v1 relu, v2 relu6). ``dropout`` before
the FC layer defaults to torchvision's 0.2 for both (v1's paper has none). Below 64x64 the
stem conv has stride 1 (the usual CIFAR form), so a 32x32 image ends on a 2x2 map, not 1x1.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.classifier import Classifier
from dlx.models.init import initialize
from dlx.models.layers import (
    ACTIVATIONS,
    NORMS,
    Activation,
    ConvNormAct,
    UnitConfig,
    init_conv_linear,
    require_image,
    stem_stride,
)
from dlx.registry import check

# v1 (Table 1): (output channels, stride) of each depthwise-separable block after the stem
V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
V1_BLOCKS += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
# v2 (Table 2): expansion t, output channels c, repeats n, first stride s
V2_BLOCKS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
ARCHS = {"mobilenet_v1": "relu", "mobilenet_v2": "relu6"}  # arch -> its own activation


def divisible(channels: float, by: int = 8) -> int:
    """Round to the nearest multiple of ``by``, never more than 10% down (torchvision's rule)."""
    rounded = max(by, int(channels + by / 2) // by * by)
    return rounded + by if rounded < 0.9 * channels else rounded


@dataclass
class MobileNetConfig(UnitConfig):
    name: str = "mobilenet"
    arch: str = field(default="mobilenet_v2", metadata=check(choices=ARCHS))
    width_mult: float = field(default=1.0, metadata=check(gt=0))
    norm: str = field(default="batch", metadata=check(choices=NORMS))
    activation: str | None = field(default=None, metadata=check(choices=ACTIVATIONS))
    dropout: float = field(default=0.2, metadata=check(ge=0, lt=1))  # before the FC


class DepthwiseSeparable(nn.Sequential):
    """v1's block: a 3x3 depthwise conv (one filter per channel) then a 1x1 pointwise conv."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, act: Activation) -> None:
        na = {"norm": norm, "activation": act, "bias": norm == "none"}
        super().__init__(
            OrderedDict(
                depthwise=ConvNormAct(cin, cin, 3, stride=stride, padding=1, groups=cin, **na),
                pointwise=ConvNormAct(cin, cout, 1, **na),
            )
        )


class InvertedResidual(nn.Module):
    """v2's block (Fig. 3b): expand 1x1 -> depthwise 3x3 -> linear project 1x1 (+ input)."""

    def __init__(
        self, cin: int, cout: int, stride: int, expand: int, norm: str, act: Activation
    ) -> None:
        super().__init__()
        hidden = round(cin * expand)
        na = {"norm": norm, "activation": act, "bias": norm == "none"}
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if expand != 1:
            layers["expand"] = ConvNormAct(cin, hidden, 1, **na)
        layers["depthwise"] = ConvNormAct(
            hidden, hidden, 3, stride=stride, padding=1, groups=hidden, **na
        )
        layers["project"] = ConvNormAct(hidden, cout, 1, **{**na, "activation": None})
        self.block = nn.Sequential(layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.residual else self.block(x)


def v1_features(cfg: MobileNetConfig, info: DataInfo, act: Activation) -> tuple[nn.Module, int]:
    na = {"norm": cfg.norm, "activation": act, "bias": cfg.norm == "none"}
    cin = divisible(32 * cfg.width_mult)
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=ConvNormAct(info.channels, cin, 3, stride=stem_stride(info), padding=1, **na)
    )
    for i, (channels, stride) in enumerate(V1_BLOCKS, start=1):
        cout = divisible(channels * cfg.width_mult)
        layers[f"block{i}"] = DepthwiseSeparable(cin, cout, stride, cfg.norm, act)
        cin = cout
    return nn.Sequential(layers), cin


def v2_features(cfg: MobileNetConfig, info: DataInfo, act: Activation) -> tuple[nn.Module, int]:
    na = {"norm": cfg.norm, "activation": act, "bias": cfg.norm == "none"}
    cin = divisible(32 * cfg.width_mult)
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        stem=ConvNormAct(info.channels, cin, 3, stride=stem_stride(info), padding=1, **na)
    )
    for i, (t, c, n, s) in enumerate(V2_BLOCKS, start=1):
        cout = divisible(c * cfg.width_mult)
        stage = []
        for j in range(n):  # the first block of a stage strides and changes the width
            stage.append(InvertedResidual(cin, cout, s if j == 0 else 1, t, cfg.norm, act))
            cin = cout
        layers[f"stage{i}"] = nn.Sequential(*stage)
    last = divisible(1280 * max(1.0, cfg.width_mult))
    layers["head_conv"] = ConvNormAct(cin, last, 1, **na)
    return nn.Sequential(layers), last


FEATURES = {"mobilenet_v1": v1_features, "mobilenet_v2": v2_features}


@MODELS.register("mobilenet", MobileNetConfig)
def mobilenet(cfg: MobileNetConfig, info: DataInfo) -> nn.Module:
    """MobileNet v1 or v2 for ``info``'s channels, image size and classes."""
    require_image(info, "mobilenet")
    act = cfg.act(cfg.activation or ARCHS[cfg.arch])
    features, width = FEATURES[cfg.arch](cfg, info, act)
    model = Classifier(OrderedDict(features=features), width, info.num_classes, cfg.dropout)
    init_conv_linear(model)  # torchvision's MobileNetV2 init
    return initialize(model, cfg.init, cfg.init_std, act.name)
