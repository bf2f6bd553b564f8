"""LeNet-5 (LeCun et al., 1998, "Gradient-based learning applied to document recognition").

C1 (6 maps, 5x5) -> S2 (pool) -> C3 (16 maps, 5x5) -> S4 (pool) -> C5 (120) -> F6 (84) -> output.

``arch=lenet5`` is the modern form (ReLU, max-pooling); ``arch=lenet5_classic`` keeps the
paper's smooth squashing and subsampling by averaging (sigmoid, average pooling; the paper's
scaled tanh and trainable subsampling coefficients are not reproduced). ``activation: null``
uses the arch's own activation; an explicit value overrides it (pooling stays the arch's).

At 32x32 the layout is the paper's (400 inputs to C5). Smaller images are padded so that the
maps never vanish: C1 pads by 2 below 32x32 (the usual LeNet-on-MNIST 28x28 form), and C3 pads
by 2 when its input is smaller than 10x10, which lets the model build from 8x8 up.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from torch import nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.layers import ACTIVATIONS, NORMS, ConvNormAct, conv_out, require_image
from dlx.registry import check

# arch -> (its own activation, its pooling)
ARCHS: dict[str, tuple[str, type[nn.Module]]] = {
    "lenet5": ("relu", nn.MaxPool2d),
    "lenet5_classic": ("sigmoid", nn.AvgPool2d),
}


@dataclass
class LeNetConfig:
    name: str = "lenet"
    arch: str = field(default="lenet5", metadata=check(choices=ARCHS))
    norm: str = field(default="none", metadata=check(choices=NORMS))
    activation: str | None = field(default=None, metadata=check(choices=ACTIVATIONS))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # between the FC layers


@MODELS.register("lenet", LeNetConfig)
def lenet(cfg: LeNetConfig, info: DataInfo) -> nn.Module:
    """LeNet-5 for ``info``'s channels, image size and classes."""
    require_image(info, "lenet")
    own_activation, pool = ARCHS[cfg.arch]
    act = cfg.activation or own_activation
    pad1 = 2 if info.image_size < 32 else 0
    size = conv_out(info.image_size, 5, padding=pad1) // 2  # after C1 + S2
    pad3 = 2 if size < 10 else 0
    size = conv_out(size, 5, padding=pad3) // 2  # after C3 + S4
    return nn.Sequential(
        OrderedDict(
            c1=ConvNormAct(info.channels, 6, 5, padding=pad1, norm=cfg.norm, activation=act),
            s2=pool(2),
            c3=ConvNormAct(6, 16, 5, padding=pad3, norm=cfg.norm, activation=act),
            s4=pool(2),
            flatten=nn.Flatten(),
            c5=nn.Linear(16 * size * size, 120),
            act5=ACTIVATIONS[act](),
            drop5=nn.Dropout(cfg.dropout),
            f6=nn.Linear(120, 84),
            act6=ACTIVATIONS[act](),
            drop6=nn.Dropout(cfg.dropout),
            output=nn.Linear(84, info.num_classes),
        )
    )
