"""Network in Network (Lin, Chen & Yan, 2014, "Network in network"), its CIFAR-10 form.

Three mlpconv blocks: a spatial conv followed by two 1x1 convs (the "micro network" shared
across positions). Max-pool, dropout, second block, average-pool, dropout, third block whose
last 1x1 conv gives one map per class; global average pooling turns the maps into logits, so
there are no fully connected layers. Widths are the authors' CIFAR-10 model: 192-160-96,
192-192-192, 192-192-classes.

Choices, documented rather than paper content:

* The last 1x1 conv has no norm or activation, so the logits are unconstrained (with a ReLU
  there, as in the released model, regression targets below 0 could never be reached).
* Pools are 3x3 stride 2 with padding 1 (the released model's ceil-mode pools without
  padding give the same 32 -> 16 -> 8 sizes); padding lets 8x8 images build.
* Weights start He-normal rather than the released model's hand-set Gaussians.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from torch import nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.init import initialize
from dlx.models.layers import NORMS, ConvNormAct, UnitConfig, init_conv_linear, require_image
from dlx.registry import check


@dataclass
class NiNConfig(UnitConfig):
    name: str = "nin"
    norm: str = field(default="none", metadata=check(choices=NORMS))
    dropout: float = field(default=0.5, metadata=check(ge=0, lt=1))  # between blocks


def mlpconv(
    cin: int, widths: tuple[int, int, int], kernel: int, cfg: NiNConfig, *, head: bool = False
) -> nn.Sequential:
    """A kxk conv and two 1x1 convs; ``head`` leaves the last one bare (it gives the logits)."""
    w1, w2, w3 = widths
    na = {"norm": cfg.norm, "activation": cfg.act()}
    last = nn.Conv2d(w2, w3, 1) if head else ConvNormAct(w2, w3, 1, **na)
    return nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(cin, w1, kernel, padding=kernel // 2, **na),
            cccp1=ConvNormAct(w1, w2, 1, **na),
            cccp2=last,
        )
    )


@MODELS.register("nin", NiNConfig)
def nin(cfg: NiNConfig, info: DataInfo) -> nn.Module:
    """NIN for ``info``'s channels and classes (any image size from 8x8)."""
    require_image(info, "nin")
    model = nn.Sequential(
        OrderedDict(
            block1=mlpconv(info.channels, (192, 160, 96), 5, cfg),
            pool1=nn.MaxPool2d(3, 2, padding=1),
            drop1=nn.Dropout(cfg.dropout),
            block2=mlpconv(96, (192, 192, 192), 5, cfg),
            pool2=nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),
            drop2=nn.Dropout(cfg.dropout),
            block3=mlpconv(192, (192, 192, info.num_classes), 3, cfg, head=True),
            gap=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
        )
    )
    init_conv_linear(model)
    return initialize(model, cfg.init, cfg.init_std, cfg.activation)
