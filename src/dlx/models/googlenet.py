"""GoogLeNet / Inception v1 (Szegedy et al., 2015, "Going deeper with convolutions").

An Inception module (Fig. 2b) runs several kernel sizes side by side on the same input -- a
1x1 conv, a 3x3 conv and a 5x5 conv, each of the larger two behind a 1x1 reduction, and a 3x3
max-pool followed by a 1x1 projection -- and concatenates the four outputs. The 1x1 reductions
make the large kernels affordable. The network (Table 1): a stem (7x7/2 conv, pool, 1x1 and 3x3
convs, pool), Inception 3a-3b, pool, 4a-4e, pool, 5a-5b, global average pooling, dropout (0.4,
the paper's) and one FC layer. The auxiliary classifiers are left out.

* ``arch=googlenet`` is Table 1, with BN after every conv (``norm``) as in torchvision.
* ``arch=googlenet_torchvision`` is torchvision's ``googlenet`` layout, whose third branch has a
  3x3 conv where the paper has 5x5 (pytorch/vision#906): 6,624,904 parameters at 224x224x3 with
  1000 classes, torchvision's count without aux heads. ``googlenet`` has 16·Σ(5x5 red × 5x5)
  more weights.
* ``factorize=true`` (Szegedy et al., 2016, "Rethinking the Inception architecture", §3) swaps
  large kernels for stacks of small ones inside every Inception module: each 5x5 becomes two
  3x3 convs (Fig. 5: 18 instead of 25 weights per channel pair), and each n x n (the 3x3s
  included) becomes a 1 x n conv followed by an n x 1 conv (Fig. 6/7, asymmetric: 6 instead of
  9). A stack keeps its input's width until its last conv, as torchvision's Inception-v3.

Below 64x64 the stem's first conv has stride 1 (its pools stay), so a 32x32 image reaches the
Inception modules at 8x8. Pools round up (``ceil_mode``), so 8x8 images build.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
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

# Table 1: name, then #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; "pool" = 3x3/2
LAYOUT: list[tuple[str, tuple[int, ...]] | str] = [
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    "pool",
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    "pool",
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
]
ARCHS = {"googlenet": 5, "googlenet_torchvision": 3}  # arch -> the third branch's kernel


@dataclass
class GoogLeNetConfig(UnitConfig):
    name: str = "googlenet"
    arch: str = field(default="googlenet", metadata=check(choices=ARCHS))
    factorize: bool = False
    norm: str = field(default="batch", metadata=check(choices=NORMS))
    dropout: float = field(default=0.4, metadata=check(ge=0, lt=1))  # before the FC


@dataclass(frozen=True)
class Convs:
    """How the Inception modules' convs are built."""

    norm: str
    act: Activation
    factorize: bool

    def __call__(self, cin: int, cout: int, kernel: int) -> nn.Module:
        """A kernel x kernel conv (-> norm -> act), or its factorized stack; a stack keeps the
        input's width until its last conv, which widens to ``cout``."""
        if self.factorize and kernel == 5:  # 5x5 -> 3x3, 3x3 (each factorized again)
            return nn.Sequential(OrderedDict(first=self(cin, cin, 3), second=self(cin, cout, 3)))
        if self.factorize and kernel > 1:  # n x n -> 1 x n, n x 1
            p = kernel // 2
            return nn.Sequential(
                OrderedDict(
                    row=self.unit(cin, cin, (1, kernel), (0, p)),
                    column=self.unit(cin, cout, (kernel, 1), (p, 0)),
                )
            )
        return self.unit(cin, cout, kernel, kernel // 2)

    def unit(
        self, cin: int, cout: int, kernel: int | tuple[int, int], padding: int | tuple[int, int]
    ) -> ConvNormAct:
        return ConvNormAct(
            cin,
            cout,
            kernel,
            padding=padding,
            norm=self.norm,
            activation=self.act,
            bias=self.norm == "none",
        )


class Inception(nn.Module):
    """Fig. 2b: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1, concatenated."""

    def __init__(self, cin: int, widths: tuple[int, ...], conv: Convs, large: int) -> None:
        super().__init__()
        n1, r3, n3, r5, n5, proj = widths
        self.branch1 = conv(cin, n1, 1)
        self.branch2 = nn.Sequential(OrderedDict(reduce=conv(cin, r3, 1), conv=conv(r3, n3, 3)))
        self.branch3 = nn.Sequential(OrderedDict(reduce=conv(cin, r5, 1), conv=conv(r5, n5, large)))
        self.branch4 = nn.Sequential(
            OrderedDict(pool=nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), proj=conv(cin, proj, 1))
        )
        self.out_channels = n1 + n3 + n5 + proj

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], dim=1)


@MODELS.register("googlenet", GoogLeNetConfig)
def googlenet(cfg: GoogLeNetConfig, info: DataInfo) -> nn.Module:
    """GoogLeNet (Inception v1) for ``info``'s channels, image size and classes."""
    require_image(info, "googlenet")
    act = cfg.act()
    conv = Convs(cfg.norm, act, cfg.factorize)
    stem = Convs(cfg.norm, act, factorize=False)
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=ConvNormAct(
            info.channels,
            64,
            7,
            stride=stem_stride(info),
            padding=3,
            norm=cfg.norm,
            activation=act,
            bias=cfg.norm == "none",
        ),
        maxpool1=nn.MaxPool2d(3, 2, ceil_mode=True),
        conv2=stem(64, 64, 1),
        conv3=stem(64, 192, 3),
        maxpool2=nn.MaxPool2d(3, 2, ceil_mode=True),
    )
    cin, pools = 192, 2
    for entry in LAYOUT:
        if entry == "pool":
            pools += 1  # torchvision's maxpool4 is 2x2/2; both give 14 -> 7 at 224
            kernel = 2 if pools == 4 else 3
            layers[f"maxpool{pools}"] = nn.MaxPool2d(kernel, 2, ceil_mode=True)
            continue
        name, widths = entry
        layers[name] = Inception(cin, widths, conv, ARCHS[cfg.arch])
        cin = layers[name].out_channels
    model = Classifier(layers, cin, info.num_classes, cfg.dropout)
    for m in model.modules():  # torchvision's init: truncated N(0, 0.01²), zero-mean weights
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.01, a=-2, b=2)
    return initialize(model, cfg.init, cfg.init_std, act.name)
