"""A small 1-D convolutional classifier: the CNN of the MNIST-1D paper (Greydanus, 2020;
its ``ConvBase``), for sequence data such as ``data=mnist1d``.

    (N, T, F) sequence -> (N, F, T): F channels over T positions
    conv1  F  -> 25, kernel 5, stride 2, padding 1, ReLU     40 -> 19 positions
    conv2  25 -> 25, kernel 3, stride 2, padding 1, ReLU     19 -> 10
    conv3  25 -> 25, kernel 3, stride 2, padding 1, ReLU     10 -> 5
    flatten 25 x 5 = 125 -> dropout -> linear -> classes

``kernels`` lists one conv per entry (its kernel size); each has ``channels`` filters and
``stride``. Weight sharing across positions and local kernels are the spatial prior the
paper's shuffled variant takes away. ``norm`` sits between conv and activation (``layer``
is GroupNorm(1, C), as in the 2-D families); ``activation`` and ``init`` as elsewhere.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS
from dlx.models.init import initialize
from dlx.models.layers import UnitConfig, conv_out, group_count
from dlx.registry import check

#: norms over a (N, C, T) feature map
NORMS_1D: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm1d,
    "layer": lambda c: nn.GroupNorm(1, c),
    "group": lambda c: nn.GroupNorm(group_count(c), c),
    "none": lambda c: nn.Identity(),
}


@dataclass
class Cnn1dConfig(UnitConfig):
    name: str = "cnn1d"
    channels: int = field(default=25, metadata=check(ge=1))
    kernels: list[int] = field(default_factory=lambda: [5, 3, 3], metadata=check(ge=1))
    stride: int = field(default=2, metadata=check(ge=1))
    padding: int = field(default=1, metadata=check(ge=0))
    norm: str = field(default="none", metadata=check(choices=NORMS_1D))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # before the output layer


class StepsAsChannels(nn.Module):
    """(N, T, F) -> (N, F, T): the features become the convolution's input channels."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


@MODELS.register("cnn1d", Cnn1dConfig)
def cnn1d(cfg: Cnn1dConfig, info: DataInfo) -> nn.Module:
    """The stack of strided 1-D convs over ``info``'s sequences, then one linear layer."""
    if info.kind != "sequence":
        raise UsageError(
            f"model=cnn1d needs sequence data (e.g. data=mnist1d); "
            f"data={info.name} is {info.kind} data"
        )
    if not cfg.kernels:
        raise UsageError("model.kernels=[]: give at least one kernel size, e.g. [5,3,3]")
    act = cfg.act()
    layers: OrderedDict[str, nn.Module] = OrderedDict(view=StepsAsChannels())
    width, length = info.features, info.seq_len
    for i, k in enumerate(cfg.kernels, start=1):
        length = conv_out(length, k, cfg.stride, cfg.padding)
        if length < 1:
            raise UsageError(
                f"model.kernels={cfg.kernels}: conv{i} leaves no positions of the "
                f"{info.seq_len}; use fewer or smaller kernels, or a smaller model.stride"
            )
        wide = cfg.channels * act.pieces
        layers[f"conv{i}"] = nn.Sequential(
            OrderedDict(
                conv=nn.Conv1d(width, wide, k, cfg.stride, cfg.padding),
                norm=NORMS_1D[cfg.norm](wide),
                act=act.module(),
            )
        )
        width = cfg.channels
    layers["flatten"] = nn.Flatten()
    layers["dropout"] = nn.Dropout(cfg.dropout)
    layers["output"] = nn.Linear(width * length, info.num_classes)
    return initialize(nn.Sequential(layers), cfg.init, cfg.init_std, act.name)
