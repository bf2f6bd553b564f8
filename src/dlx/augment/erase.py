"""Erasing: ``cutout`` blanks one square per chosen sample (DeVries & Taylor, 2017).

The square's side is ``size`` times the image's side, placed uniformly at random wholly
inside the image, so every erased sample loses exactly ``side^2`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dlx.augment.base import AUGMENTS, Op, Rng, box_mask, chosen
from dlx.data.base import DataInfo
from dlx.registry import check


@dataclass
class CutoutConfig:
    p: float = field(default=1.0, metadata=check(ge=0, le=1))
    size: float = field(default=0.5, metadata=check(gt=0, le=1))  # side, fraction of the image's
    value: float = field(default=0.0, metadata=check(ge=0, le=1))  # fill, in [0, 1]


def cutout_side(cfg: CutoutConfig, image_size: int) -> int:
    """The erased square's side in pixels (at least 1)."""
    return max(1, round(cfg.size * image_size))


@AUGMENTS.register("cutout", CutoutConfig)
def cutout(cfg: CutoutConfig, info: DataInfo) -> Op:
    """Fill a random ``size``-sided square of each chosen sample with ``value``."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        n, (h, w), g = len(x), x.shape[-2:], rng.device
        side = cutout_side(cfg, h)
        top = torch.randint(0, h - side + 1, (n,), device=x.device, generator=g)
        left = torch.randint(0, w - side + 1, (n,), device=x.device, generator=g)
        size = torch.full((n,), side, device=x.device)
        mask = box_mask(top, left, size, size, (h, w))
        mask &= chosen(cfg.p, n, g, x.device).view(n, 1, 1, 1)
        return x.masked_fill(mask, cfg.value), y

    from torchvision.transforms import v2

    area = (cutout_side(cfg, info.image_size) / info.image_size) ** 2
    t = v2.RandomErasing(cfg.p, scale=(area, area), ratio=(1, 1), value=round(cfg.value * 255))
    return Op(apply, t)
