"""What every augmentation option shares: the registry, the op record and batched draws.

An option's builder gets its checked config and the ``DataInfo`` and returns an ``Op``:
``batch(x, y, rng)`` transforms a float batch (N, C, H, W) in [0, 1] on the training device,
each sample its own draw from ``rng``; ``sample`` is the same option as a per-sample
``torchvision.transforms.v2`` transform on uint8 images, for datasets read through a
DataLoader (None where the option only makes sense on a batch, e.g. mixup).

Pure data-movement options (``crop``, ``flip``) also give ``remap``: the same draws as a
``Remap``, a per-sample map of which input pixel each output pixel reads. The ``Augmenter``
composes the leading run of such maps into one gather, done on the uint8 batch before the
float conversion (exact: moving bytes commutes with ``/ 255``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dlx.registry import Registry

AUGMENTS: Registry = Registry("augment", package="dlx.augment")


@dataclass
class Rng:
    """The generators an op may draw from: ``device`` (on the batch's device, no host sync)
    and ``cpu`` (for choices the host must know, e.g. which torchvision op a group gets)."""

    device: torch.Generator
    cpu: torch.Generator


BatchFn = Callable[[Tensor, Tensor, Rng], tuple[Tensor, Tensor]]


@dataclass
class Remap:
    """Per sample, a separable pixel map: output pixel (i, j) of sample n reads input pixel
    (rows[n, i], cols[n, j]); an index of -1 or H (W) reads a zero (zeros padding). None
    leaves that axis as it is."""

    rows: Tensor | None  # (N, H) int64 in [-1, H]
    cols: Tensor | None  # (N, W) int64 in [-1, W]
    zeros: bool = False  # whether -1 / H may occur (known without looking: no device sync)

    def then(self, later: Remap) -> Remap:
        """This map followed by ``later``: output (i, j) reads what ``later`` reads of ours."""

        def chain(a: Tensor | None, b: Tensor | None) -> Tensor | None:
            if a is None or b is None:
                return b if a is None else a
            # a zero stays a zero: ``a`` framed by -1 reads one for -1 and the size
            return torch.nn.functional.pad(a, (1, 1), value=-1).gather(1, b + 1)

        rows, cols = chain(self.rows, later.rows), chain(self.cols, later.cols)
        return Remap(rows, cols, self.zeros or later.zeros)


#: draws an op's map for a batch of ``(N, H, W)`` from ``rng`` on ``device``
RemapFn = Callable[[tuple[int, int, int], Rng, torch.device], Remap]


@dataclass
class Op:
    """One option, built: the batched transform and its per-sample v2 twin (or None); for a
    pure data-movement option, ``remap`` draws what ``batch`` draws, as a ``Remap``."""

    batch: BatchFn
    sample: Any = None
    remap: RemapFn | None = None


def uniform(lo: float, hi: float, n: int, g: torch.Generator, device: torch.device) -> Tensor:
    """``n`` draws from U(lo, hi) on ``device``."""
    return torch.rand(n, device=device, generator=g).mul_(hi - lo).add_(lo)


def chosen(p: float, n: int, g: torch.Generator, device: torch.device) -> Tensor:
    """A bool mask of ``n`` samples, each True with probability ``p``."""
    return torch.rand(n, device=device, generator=g) < p


def where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-sample select: ``new`` where ``mask`` (N,) is True, else ``old`` unchanged."""
    return torch.where(mask.view(-1, *([1] * (old.dim() - 1))), new, old)


def gamma(alpha: float, n: int, g: torch.Generator, device: torch.device, tries: int = 8) -> Tensor:
    """``n`` draws from Gamma(alpha, 1) with ``g`` (torch's own sampler takes no generator).

    Marsaglia & Tsang (2000), vectorised: ``tries`` candidates per sample, the first accepted
    one kept (acceptance is over 95% per try, so all ``tries`` fail with probability < 1e-10;
    then the mode is used). alpha < 1 via Gamma(alpha + 1) * U^(1/alpha).
    """
    a = alpha + 1 if alpha < 1 else alpha
    d = a - 1 / 3
    c = 1 / math.sqrt(9 * d)
    z = torch.randn(tries, n, device=device, generator=g)
    u = torch.rand(tries, n, device=device, generator=g)
    v = (1 + c * z) ** 3
    ok = (v > 0) & (torch.log(u) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-12)))
    first = torch.argmax(ok.int(), dim=0)  # index of the first accepted try
    sample = (d * v).gather(0, first[None]).squeeze(0)
    x = torch.where(ok.any(0), sample, torch.full_like(sample, d))
    if alpha < 1:
        x = x * torch.rand(n, device=device, generator=g).pow(1 / alpha)
    return x


def beta(alpha: float, n: int, g: torch.Generator, device: torch.device) -> Tensor:
    """``n`` draws from Beta(alpha, alpha) with ``g``."""
    a, b = gamma(alpha, n, g, device), gamma(alpha, n, g, device)
    return a / (a + b).clamp_min(1e-12)


def box_mask(top: Tensor, left: Tensor, h: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, 1, H, W) bool masks, True inside each sample's box [top, top+h) x [left, left+w)."""
    H, W = size
    rows = torch.arange(H, device=top.device).view(1, H)
    cols = torch.arange(W, device=top.device).view(1, W)
    r = (rows >= top[:, None]) & (rows < (top + h)[:, None])
    c = (cols >= left[:, None]) & (cols < (left + w)[:, None])
    return (r[:, :, None] & c[:, None, :])[:, None]
