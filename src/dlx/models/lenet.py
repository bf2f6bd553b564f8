"""LeNet-5 (LeCun et al., 1998): two conv/pool stages and three fully connected layers.

``arch=lenet5`` is the modern form (ReLU, max-pool); ``arch=lenet5_classic`` the paper's
(sigmoid-like tanh squashing... here sigmoid, and average pooling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.registry import check


@dataclass
class LeNetConfig:
    name: str = "lenet"
    arch: str = field(default="lenet5", metadata=check(choices=["lenet5", "lenet5_classic"]))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))


@MODELS.register("lenet", LeNetConfig)
def lenet(cfg: LeNetConfig, info: DataInfo) -> nn.Module:
    classic = cfg.arch == "lenet5_classic"
    act = nn.Sigmoid if classic else nn.ReLU
    pool = nn.AvgPool2d if classic else nn.MaxPool2d
    size = info.image_size
    # C1 keeps 32x32 inputs at 28x28 as in the paper; smaller inputs are padded to keep shape.
    pad = 2 if size < 32 else 0
    s = (size + 2 * pad - 4) // 2  # after C1 + S2
    s = (s - 4) // 2  # after C3 + S4
    if s < 1:
        raise ValueError(f"LeNet needs image_size >= 16, got {size}")
    return nn.Sequential(
        nn.Conv2d(info.channels, 6, 5, padding=pad),  # C1
        act(),
        pool(2),  # S2
        nn.Conv2d(6, 16, 5),  # C3
        act(),
        pool(2),  # S4
        nn.Flatten(),
        nn.Linear(16 * s * s, 120),  # C5
        act(),
        nn.Dropout(cfg.dropout),
        nn.Linear(120, 84),  # F6
        act(),
        nn.Dropout(cfg.dropout),
        nn.Linear(84, info.num_classes),  # output
    )
