"""A convolutional autoencoder: image -> strided convs -> code -> mirrored decoder -> image.

encoder: per entry of ``channels``, a 3x3 conv -> norm -> activation that halves the side
(stride 2; with ``upsample=unpool``, a stride-1 conv then a 2x2 max-pool that keeps its
indices) -> flatten -> dropout -> linear to the code (``code_size`` numbers, no activation).

decoder, the encoder's mirror: linear -> activation -> the last feature map's shape, then per
stage, back up to exactly the size that stage had on the way down (any side from 8 to 224,
odd ones too), by ``upsample``:

- ``transposed``: a 3x3 transposed conv of stride 2, its ``output_padding`` computed from the
  target size (Zeiler et al., 2010; the "deconvolution" of Long et al., 2015);
- ``unpool``: max-unpooling with the encoder's pooling indices (each value back where its
  maximum was, zeros elsewhere; Zeiler & Fergus, 2014; SegNet) then a 3x3 conv;
- ``interpolate``: bilinear resizing to the target size then a 3x3 conv (no checkerboard
  artefacts; Odena et al., 2016).

Each stage maps its channels back to the previous stage's; the last one to the image's
channels, linear, then a sigmoid: pixels in [0, 1], what the ``reconstruction`` objective
(the task its option brings, whatever the data's labels) compares with the clean input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import torch.nn.functional as F
from torch import Tensor, nn

from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS
from dlx.models.init import initialize
from dlx.models.layers import NORMS, Activation, ConvNormAct, UnitConfig, require_image
from dlx.registry import check


def down_side(side: int, upsample: str) -> int:
    """A stage's output side: a stride-2 3x3 conv (padding 1) gives ceil(side / 2), the
    2x2 max-pool floor(side / 2)."""
    return side // 2 if upsample == "unpool" else (side + 1) // 2


class Down(nn.Module):
    """One encoder stage: the conv unit, then (``pool``) a max-pool that returns its indices."""

    def __init__(self, conv: nn.Module, pool: bool) -> None:
        super().__init__()
        self.conv = conv
        self.pool = nn.MaxPool2d(2, return_indices=True) if pool else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        x = self.conv(x)
        return self.pool(x) if self.pool is not None else (x, None)


class Transposed(nn.Module):
    """Up to ``side``: a stride-2 3x3 transposed conv whose ``output_padding`` lands there."""

    def __init__(self, cin: int, cout: int, side: int, below: int) -> None:
        super().__init__()
        pad = side - (2 * below - 1)  # (below - 1) * 2 - 2 * 1 + 3 = 2 * below - 1
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=pad)

    def forward(self, x: Tensor, indices: Tensor | None) -> Tensor:
        return self.conv(x)


class Unpool(nn.Module):
    """Up to ``side``: max-unpooling with the encoder's indices, then a 3x3 conv."""

    def __init__(self, cin: int, cout: int, side: int, below: int) -> None:
        super().__init__()
        self.side = side
        self.unpool = nn.MaxUnpool2d(2)
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: Tensor, indices: Tensor | None) -> Tensor:
        assert indices is not None
        return self.conv(self.unpool(x, indices, output_size=(self.side, self.side)))


class Interpolate(nn.Module):
    """Up to ``side``: bilinear resizing, then a 3x3 conv."""

    def __init__(self, cin: int, cout: int, side: int, below: int) -> None:
        super().__init__()
        self.side = side
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: Tensor, indices: Tensor | None) -> Tensor:
        x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return self.conv(x)


#: model.upsample -> a decoder stage (in channels, out channels, target side, side below)
UPSAMPLE: dict[str, Callable[[int, int, int, int], nn.Module]] = {
    "transposed": Transposed,
    "unpool": Unpool,
    "interpolate": Interpolate,
}


@dataclass
class AutoencoderConfig(UnitConfig):
    name: str = "autoencoder"
    channels: list[int] = field(default_factory=lambda: [32, 64], metadata=check(ge=1))
    code_size: int = field(default=32, metadata=check(ge=1))
    upsample: str = field(default="transposed", metadata=check(choices=UPSAMPLE))
    norm: str = field(default="batch", metadata=check(choices=NORMS))
    dropout: float = field(default=0.0, metadata=check(ge=0, lt=1))  # on the features, pre-code


class Up(nn.Module):
    """One decoder stage: the upsampling layer, then norm -> activation (none on the last)."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.layer, self.norm, self.act = layer, norm, act

    def forward(self, x: Tensor, indices: Tensor | None) -> Tensor:
        return self.act(self.norm(self.layer(x, indices)))


class Autoencoder(nn.Module):
    """encoder -> code -> decoder; ``encode`` alone gives the code."""

    def __init__(
        self, encoder: list[Down], code: nn.Module, expand: nn.Module, decoder: list[Up]
    ) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(encoder)
        self.code = code
        self.expand = expand
        self.decoder = nn.ModuleList(decoder)
        self.output = nn.Sigmoid()

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        """The code of ``x``, and each stage's pooling indices (None without pooling)."""
        indices: list[Tensor | None] = []
        for stage in self.encoder:
            x, i = stage(x)
            indices.append(i)
        return self.code(x), indices

    def decode(self, code: Tensor, indices: list[Tensor | None]) -> Tensor:
        x = self.expand(code)
        for stage, i in zip(self.decoder, reversed(indices)):
            x = stage(x, i)
        return self.output(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(*self.encode(x))


@MODELS.register("autoencoder", AutoencoderConfig, task="reconstruction")
def autoencoder(cfg: AutoencoderConfig, info: DataInfo) -> nn.Module:
    """The autoencoder for ``info``'s channels and image size (its labels are not used)."""
    require_image(info, "autoencoder")
    act: Activation = cfg.act()
    pool = cfg.upsample == "unpool"
    widths = [info.channels, *cfg.channels]
    sides = [info.image_size]
    encoder = []
    for cin, cout in pairwise(widths):
        unit = ConvNormAct(
            cin, cout, 3, stride=1 if pool else 2, padding=1, norm=cfg.norm, activation=act
        )
        encoder.append(Down(unit, pool))
        sides.append(down_side(sides[-1], cfg.upsample))
    if sides[-1] < 1:
        raise UsageError(
            f"model.channels={list(cfg.channels)}: {len(cfg.channels)} halvings of a "
            f"{info.image_size}x{info.image_size} image leave nothing; use fewer stages"
        )
    last = widths[-1] * sides[-1] ** 2
    code = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(last, cfg.code_size))
    expand = nn.Sequential(
        nn.Linear(cfg.code_size, last * act.pieces),
        act.module(),
        nn.Unflatten(1, (widths[-1], sides[-1], sides[-1])),
    )
    decoder = []
    for k in reversed(range(len(cfg.channels))):  # stage k: widths[k+1] -> widths[k]
        image = k == 0  # the last stage: to the image, linear (the sigmoid follows)
        cout = widths[k] if image else widths[k] * act.pieces
        layer = UPSAMPLE[cfg.upsample](widths[k + 1], cout, sides[k], sides[k + 1])
        norm = nn.Identity() if image else NORMS[cfg.norm](cout)
        decoder.append(Up(layer, norm, nn.Identity() if image else act.module()))
    model = Autoencoder(encoder, code, expand, decoder)
    return initialize(model, cfg.init, cfg.init_std, act.name)
