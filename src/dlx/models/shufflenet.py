"""ShuffleNet V2 (Ma, Zhang, Zheng & Sun, 2018, "ShuffleNet V2: practical guidelines for
efficient CNN architecture design"): channel split, depthwise convs and channel shuffle.

Each unit (Fig. 3c) splits its channels in two halves: one passes unchanged, the other goes
through 1x1 conv -> 3x3 depthwise conv -> 1x1 conv; the halves are concatenated and then
*shuffled* (the channel grid of the two groups transposed), so the next unit's split mixes
information from both. A downsampling unit (Fig. 3d) sends the whole input down two strided
branches instead, doubling the channels. A 3x3 stride-2 conv and a max-pool make the stem,
three stages of units follow (4, 8, 4), then a 1x1 conv, global average pooling and an FC layer.

``arch`` picks the width (Table 5): x0_5, x1_0, x1_5, x2_0. Layout and init are torchvision's,
so at 224x224x3 with 1000 classes the counts match (x0_5: 1,366,792; x1_0: 2,278,604). The
depthwise convs are linear (BN, no activation), as in the paper. Below 64x64 the stem conv has
stride 1 (the max-pool stays), so a 32x32 image ends on a 2x2 map. ``dropout`` (default 0, not
in the paper) acts before the FC layer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.blocks import channel_shuffle
from dlx.models.classifier import Classifier
from dlx.models.init import initialize
from dlx.models.layers import (
    NORMS,
    Activation,
    ConvNormAct,
    UnitConfig,
    require_image,
    stem_stride,
)
from dlx.registry import check

REPEATS = (4, 8, 4)  # units per stage (stages 2-4)
# arch -> output channels of conv1, stages 2-4 and conv5 (Table 5)
ARCHS: dict[str, tuple[int, ...]] = {
    "shufflenet_v2_x0_5": (24, 48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (24, 116, 232, 464, 1024),
    "shufflenet_v2_x1_5": (24, 176, 352, 704, 1024),
    "shufflenet_v2_x2_0": (24, 244, 488, 976, 2048),
}


@dataclass
class ShuffleNetConfig(UnitConfig):
    name: str = "shufflenet"
    arch: str = field(default="shufflenet_v2_x1_0", metadata=check(choices=ARCHS))
    norm: str = field(default="batch", metadata=check(choices=NORMS))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # before the FC


class ShuffleUnit(nn.Module):
    """Fig. 3c (stride 1: split, one half transformed) or 3d (stride 2: both branches)."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, act: Activation) -> None:
        super().__init__()
        half = cout // 2
        na = {"norm": norm, "activation": act, "bias": norm == "none"}
        linear = {**na, "activation": None}

        def depthwise(channels: int) -> ConvNormAct:
            return ConvNormAct(
                channels, channels, 3, stride=stride, padding=1, groups=channels, **linear
            )

        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                OrderedDict(depthwise=depthwise(cin), pointwise=ConvNormAct(cin, half, 1, **na))
            )
        self.branch2 = nn.Sequential(
            OrderedDict(
                reduce=ConvNormAct(cin if stride > 1 else half, half, 1, **na),
                depthwise=depthwise(half),
                pointwise=ConvNormAct(half, half, 1, **na),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)  # channel split
            out = torch.cat((kept, self.branch2(x)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


@MODELS.register("shufflenet", ShuffleNetConfig)
def shufflenet(cfg: ShuffleNetConfig, info: DataInfo) -> nn.Module:
    """ShuffleNet V2 for ``info``'s channels, image size and classes."""
    require_image(info, "shufflenet")
    act = cfg.act()
    widths = ARCHS[cfg.arch]
    na = {"norm": cfg.norm, "activation": act, "bias": cfg.norm == "none"}
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=ConvNormAct(info.channels, widths[0], 3, stride=stem_stride(info), padding=1, **na),
        maxpool=nn.MaxPool2d(3, 2, padding=1),
    )
    cin = widths[0]
    for i, (repeats, cout) in enumerate(zip(REPEATS, widths[1:-1]), start=2):
        units = [ShuffleUnit(cin, cout, 2, cfg.norm, act)]
        units += [ShuffleUnit(cout, cout, 1, cfg.norm, act) for _ in range(repeats - 1)]
        layers[f"stage{i}"] = nn.Sequential(*units)
        cin = cout
    layers["conv5"] = ConvNormAct(cin, widths[-1], 1, **na)
    model = Classifier(layers, widths[-1], info.num_classes, cfg.dropout)
    return initialize(model, cfg.init, cfg.init_std, act.name)
