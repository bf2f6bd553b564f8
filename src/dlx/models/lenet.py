"""LeNet-5 (LeCun et al., 1998, "Gradient-based learning applied to document recognition").

C1 (6 maps, 5x5) -> S2 (pool) -> C3 (16 maps, 5x5) -> S4 (pool) -> C5 (120) -> F6 (84) -> output.

``arch=lenet5`` is the modern form (ReLU, max-pooling); ``arch=lenet5_classic`` keeps the
paper's smooth squashing and subsampling by averaging (sigmoid, average pooling; the paper's
scaled tanh and trainable subsampling coefficients are not reproduced). ``activation: null``
uses the arch's own activation; an explicit value overrides it (pooling stays the arch's).

``conv=local`` makes C1 and C3 locally connected: the same receptive fields, but every output
position has its own weights (no sharing), so C1 holds 28*28*6*(25+1) = 122,304 parameters at
32x32 instead of 156 -- the convolution chapter's first variant, its count in ``dlx summary``.
``conv=stacked3x3`` puts two 3x3 convolutions in place of each 5x5 (VGG's argument: the same
receptive field, fewer weights); ``conv=separable`` a depthwise 5x5 then a 1x1 (MobileNet's:
a fraction of the MACs).

At 32x32 the layout is the paper's (400 inputs to C5). Smaller images are padded so that the
maps never vanish: C1 pads by 2 below 32x32 (the usual LeNet-on-MNIST 28x28 form), and C3 pads
by 2 when its input is smaller than 10x10, which lets the model build from 8x8 up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.blocks import LocallyConnected2d
from dlx.models.init import initialize
from dlx.models.layers import ACTIVATIONS, NORMS, Activation, UnitConfig, conv_out, require_image
from dlx.registry import check

# arch -> (its own activation, its pooling)
ARCHS: dict[str, tuple[str, type[nn.Module]]] = {
    "lenet5": ("relu", nn.MaxPool2d),
    "lenet5_classic": ("sigmoid", nn.AvgPool2d),
}


def stacked3x3(cin: int, cout: int, k: int, pad: int) -> nn.Sequential:
    """Two 3x3 convolutions (a ReLU between) in place of one 5x5: the same 5x5 receptive field
    and output size (each pads by half the 5x5's padding). The first keeps ``cin`` channels,
    so the pair holds 9*cin*(cin+cout) weights against 25*cin*cout -- or ``cout`` when the
    input has fewer than 4 channels (a 1-channel bottleneck behind a ReLU can die)."""
    assert k == 5, "stacked3x3 replaces a 5x5 convolution"
    mid = cout if cin < 4 else cin
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=pad // 2),
        nn.ReLU(),
        nn.Conv2d(mid, cout, 3, padding=pad // 2),
    )


def separable(cin: int, cout: int, k: int, pad: int) -> nn.Sequential:
    """Depthwise-separable: a kxk convolution per input channel, then a 1x1 across channels
    (MobileNet's factorisation): cin*(k*k + cout) weights and MACs per position against
    cin*cout*k*k."""
    return nn.Sequential(nn.Conv2d(cin, cin, k, padding=pad, groups=cin), nn.Conv2d(cin, cout, 1))


#: model.conv -> layer(in, out, kernel, padding, input size): shared or unshared weights,
#: two stacked 3x3s or a depthwise-separable convolution
CONVS: dict[str, Callable[[int, int, int, int, int], nn.Module]] = {
    "conv": lambda cin, cout, k, pad, size: nn.Conv2d(cin, cout, k, padding=pad),
    "local": lambda cin, cout, k, pad, size: LocallyConnected2d(cin, cout, k, size, padding=pad),
    "stacked3x3": lambda cin, cout, k, pad, size: stacked3x3(cin, cout, k, pad),
    "separable": lambda cin, cout, k, pad, size: separable(cin, cout, k, pad),
}


@dataclass
class LeNetConfig(UnitConfig):
    name: str = "lenet"
    arch: str = field(default="lenet5", metadata=check(choices=ARCHS))
    conv: str = field(default="conv", metadata=check(choices=CONVS))
    norm: str = field(default="none", metadata=check(choices=NORMS))
    activation: str | None = field(default=None, metadata=check(choices=ACTIVATIONS))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # between the FC layers


def feature_map(
    cfg: LeNetConfig, act: Activation, cin: int, cout: int, pad: int, size: int
) -> nn.Sequential:
    """C1 / C3: a 5x5 conv (or locally connected layer) -> norm -> activation."""
    wide = cout * act.pieces
    return nn.Sequential(
        OrderedDict(
            conv=CONVS[cfg.conv](cin, wide, 5, pad, size),
            norm=NORMS[cfg.norm](wide),
            act=act.module(),
        )
    )


@MODELS.register("lenet", LeNetConfig)
def lenet(cfg: LeNetConfig, info: DataInfo) -> nn.Module:
    """LeNet-5 for ``info``'s channels, image size and classes."""
    require_image(info, "lenet")
    own_activation, pool = ARCHS[cfg.arch]
    act = cfg.act(cfg.activation or own_activation)
    pad1 = 2 if info.image_size < 32 else 0
    c1 = feature_map(cfg, act, info.channels, 6, pad1, info.image_size)
    size = conv_out(info.image_size, 5, padding=pad1) // 2  # after C1 + S2
    pad3 = 2 if size < 10 else 0
    c3 = feature_map(cfg, act, 6, 16, pad3, size)
    size = conv_out(size, 5, padding=pad3) // 2  # after C3 + S4
    k = act.pieces
    model = nn.Sequential(
        OrderedDict(
            c1=c1,
            s2=pool(2),
            c3=c3,
            s4=pool(2),
            flatten=nn.Flatten(),
            c5=nn.Linear(16 * size * size, 120 * k),
            act5=act.module(),
            drop5=nn.Dropout(cfg.dropout),
            f6=nn.Linear(120, 84 * k),
            act6=act.module(),
            drop6=nn.Dropout(cfg.dropout),
            output=nn.Linear(84, info.num_classes),
        )
    )
    return initialize(model, cfg.init, cfg.init_std, act.name)
