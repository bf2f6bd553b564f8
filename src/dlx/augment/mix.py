"""Multi-sample options: ``mixup`` (Zhang et al., 2018) and ``cutmix`` (Yun et al., 2019).

Each sample is mixed with a partner from the same batch (a random permutation) with its own
weight lambda ~ Beta(alpha, alpha): mixup blends the pixels, cutmix pastes a box of the partner
whose area is 1 - lambda (clipped at the border; lambda is then the exact kept fraction).
Targets become soft (N, num_classes) float rows summing to 1: lambda on the sample's class and
1 - lambda on the partner's, which the cross-entropy and the accuracy (against the argmax)
take as they are; label smoothing is applied on top of the soft targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.augment.base import AUGMENTS, Op, Rng, beta, box_mask, chosen
from dlx.data.base import DataInfo
from dlx.registry import check


@dataclass
class MixConfig:
    p: float = field(default=1.0, metadata=check(ge=0, le=1))  # chance a sample is mixed
    alpha: float = field(default=0.2, metadata=check(gt=0))


@dataclass
class CutMixConfig(MixConfig):
    alpha: float = field(default=1.0, metadata=check(gt=0))


def soft(y: Tensor, num_classes: int) -> Tensor:
    """Targets as float (N, K) rows: one-hot for class indices, unchanged if already soft."""
    return y if y.is_floating_point() else F.one_hot(y, num_classes).float()


def mix_targets(y: Tensor, perm: Tensor, lam: Tensor, num_classes: int) -> Tensor:
    """lam * y + (1 - lam) * y[perm], row by row."""
    t = soft(y, num_classes)
    lam = lam.view(-1, 1).to(t.dtype)
    return lam * t + (1 - lam) * t[perm]


def _draw(cfg: MixConfig, n: int, rng: Rng, dev: torch.device) -> tuple[Tensor, Tensor]:
    """A partner permutation and per-sample lambda (1 for samples not chosen)."""
    g = rng.device
    perm = torch.randperm(n, device=dev, generator=g)
    lam = beta(cfg.alpha, n, g, dev)
    return perm, torch.where(chosen(cfg.p, n, g, dev), lam, 1.0)


@AUGMENTS.register("mixup", MixConfig)
def mixup(cfg: MixConfig, info: DataInfo) -> Op:
    """Blend each sample with a partner: lam * x + (1 - lam) * x[perm]."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        perm, lam = _draw(cfg, len(x), rng, x.device)
        w = lam.view(-1, 1, 1, 1).to(x.dtype)
        return w * x + (1 - w) * x[perm], mix_targets(y, perm, lam, info.num_classes)

    return Op(apply)


def cutmix_boxes(lam: Tensor, size: tuple[int, int], g: torch.Generator) -> Tensor:
    """(N, 1, H, W) masks of boxes with area about (1 - lam), centred uniformly, clipped."""
    h, w = size
    n, dev = len(lam), lam.device
    r = (1 - lam).clamp_min(0).sqrt()
    bh, bw = (r * h).round().long(), (r * w).round().long()
    cy = torch.randint(0, h, (n,), device=dev, generator=g)
    cx = torch.randint(0, w, (n,), device=dev, generator=g)
    top, left = (cy - bh // 2).clamp(0, h), (cx - bw // 2).clamp(0, w)
    bottom, right = (cy + bh - bh // 2).clamp(0, h), (cx + bw - bw // 2).clamp(0, w)
    return box_mask(top, left, bottom - top, right - left, size)


@AUGMENTS.register("cutmix", CutMixConfig)
def cutmix(cfg: CutMixConfig, info: DataInfo) -> Op:
    """Paste a box of a partner into each sample; targets weighted by the pixel areas."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        perm, lam = _draw(cfg, len(x), rng, x.device)
        mask = cutmix_boxes(lam, x.shape[-2:], rng.device)
        kept = 1 - mask.flatten(1).float().mean(1)  # the exact fraction left of each sample
        return torch.where(mask, x[perm], x), mix_targets(y, perm, kept, info.num_classes)

    return Op(apply)
