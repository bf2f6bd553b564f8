"""The multilayer perceptron (Rumelhart, Hinton & Williams, 1986) and softmax regression.

The input is flattened (an image's C*H*W pixels, or a sequence's T*F values), then each entry
of ``hidden`` adds one fully connected layer -> norm -> activation -> dropout, and a last
linear layer gives the logits. ``hidden=[]`` leaves that last layer alone: softmax regression,
a linear classifier on the pixels (the softmax is in the loss).

``norm`` acts on the hidden units before the activation (Ioffe & Szegedy, 2015): ``batch`` is
BatchNorm1d, ``layer`` LayerNorm (Ba et al., 2016), ``group`` GroupNorm. With
``activation=maxout`` each hidden layer computes ``maxout_pieces`` linear pieces per unit and
keeps their max (Goodfellow et al., 2013): k times the weights of a ReLU layer of that width.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS
from dlx.models.init import initialize
from dlx.models.layers import UnitConfig, group_count
from dlx.registry import check

#: norms over a (N, units) batch of hidden units
NORMS_1D: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
    "group": lambda c: nn.GroupNorm(group_count(c), c),
    "none": lambda c: nn.Identity(),
}


@dataclass
class MLPConfig(UnitConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 128], metadata=check(ge=1))
    norm: str = field(default="none", metadata=check(choices=NORMS_1D))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # after each hidden layer


@MODELS.register("mlp", MLPConfig)
def mlp(cfg: MLPConfig, info: DataInfo) -> nn.Module:
    """An MLP on ``info``'s flattened samples (images or sequences)."""
    if info.kind not in ("image", "sequence"):
        raise UsageError(
            f"model=mlp needs image or sequence data; data={info.name} is a {info.kind} task"
        )
    act = cfg.act()
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = math.prod(info.input_shape)
    for i, units in enumerate(cfg.hidden, start=1):
        layers[f"fc{i}"] = nn.Sequential(
            OrderedDict(
                linear=nn.Linear(width, units * act.pieces),
                norm=NORMS_1D[cfg.norm](units * act.pieces),
                act=act.module(),
                dropout=nn.Dropout(cfg.dropout),
            )
        )
        width = units
    layers["output"] = nn.Linear(width, info.num_classes)
    return initialize(nn.Sequential(layers), cfg.init, cfg.init_std, act.name)
