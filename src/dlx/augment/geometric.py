"""Geometric options: ``flip``, ``crop`` (padding + random offset: translation), ``rotate``,
``affine`` (rotation, scale, shear, translation).

Crops and flips are pure data movement: each draws a ``Remap`` (which input row and column
every output pixel reads, per sample) and ``remap`` does it as one gather, whatever the dtype;
the ``Augmenter`` composes crop + flip into a single map and runs it on the uint8 batch.
Rotations and affine maps build one 2x3 matrix per sample for ``F.affine_grid`` and resample
bilinearly with ``F.grid_sample``. Samples not chosen (probability ``1 - p``) are returned
unchanged, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.augment.base import AUGMENTS, Op, Remap, Rng, chosen, uniform, where
from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.registry import check

P = check(ge=0, le=1)


def _uint8_fill(fill: float, channels: int) -> list[float]:
    return [round(fill * 255)] * channels


def remap(x: Tensor, m: Remap) -> Tensor:
    """``x`` (N, C, H, W), any dtype, with each sample's pixels moved as ``m`` says.

    One gather with per-sample flat indices shared by the channels; where ``m`` may read a
    zero, from ``x`` framed by a one-pixel zero border.
    """
    if m.rows is None and m.cols is None:
        return x
    n, c, h, w = x.shape
    b = int(m.zeros)  # border width
    rows = torch.arange(h, device=x.device)[None] if m.rows is None else m.rows
    cols = torch.arange(w, device=x.device)[None] if m.cols is None else m.cols
    if b:
        x = F.pad(x, (b, b, b, b))
    idx = (rows[:, :, None] + b) * (w + 2 * b) + (cols[:, None, :] + b)  # (N or 1, H, W)
    idx = idx.view(idx.shape[0], 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, -1).gather(2, idx).view(n, c, h, w)


# --- flip -------------------------------------------------------------------------------------
@dataclass
class FlipConfig:
    p: float = field(default=0.5, metadata=P)
    horizontal: bool = True
    vertical: bool = False


@AUGMENTS.register("flip", FlipConfig)
def flip(cfg: FlipConfig, info: DataInfo) -> Op:
    """Mirror each sample left-right (and/or top-bottom) with probability ``p``."""

    def draw(shape: tuple[int, int, int], rng: Rng, device: torch.device) -> Remap:
        n, h, w = shape
        rows = cols = None
        if cfg.horizontal:
            i = torch.arange(w, device=device)
            cols = torch.where(chosen(cfg.p, n, rng.device, device)[:, None], i.flip(0), i)
        if cfg.vertical:
            i = torch.arange(h, device=device)
            rows = torch.where(chosen(cfg.p, n, rng.device, device)[:, None], i.flip(0), i)
        return Remap(rows, cols)

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        n, _, h, w = x.shape
        return remap(x, draw((n, h, w), rng, x.device)), y

    from torchvision.transforms import v2

    sample = [v2.RandomHorizontalFlip(cfg.p)] if cfg.horizontal else []
    sample += [v2.RandomVerticalFlip(cfg.p)] if cfg.vertical else []
    return Op(apply, v2.Compose(sample), draw)


# --- crop -------------------------------------------------------------------------------------
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}  # torchvision


@dataclass
class CropConfig:
    p: float = field(default=1.0, metadata=P)
    padding: int = field(default=4, metadata=check(ge=0))  # pixels on each side
    padding_mode: str = field(default="zeros", metadata=check(choices=list(PAD_MODES)))


def _source(i: Tensor, size: int, mode: str) -> Tensor:
    """Indices ``i`` (may fall outside [0, size)) mapped into the image as padding reads them."""
    if mode == "reflect":
        i = i.abs()
        i = torch.where(i >= size, 2 * (size - 1) - i, i)
    return i.clamp(0, size - 1)


def crop_map(size: tuple[int, int], pad: int, top: Tensor, left: Tensor, mode: str) -> Remap:
    """The map of each sample's H x W window of the image padded by ``pad``, at (top, left):
    zeros padding reads a zero (-1 or the size), replicate clamps, reflect mirrors the indices."""
    h, w = size
    rows = top[:, None] + torch.arange(-pad, h - pad, device=top.device)  # (N, H) source rows
    cols = left[:, None] + torch.arange(-pad, w - pad, device=left.device)  # (N, W)
    if mode == "zeros":
        return Remap(rows.clamp_(-1, h), cols.clamp_(-1, w), zeros=True)
    return Remap(_source(rows, h, mode), _source(cols, w, mode))


def crop_offsets(x: Tensor, pad: int, top: Tensor, left: Tensor, mode: str) -> Tensor:
    """Each sample's H x W window of ``x`` padded by ``pad``, starting at (top, left)."""
    return remap(x, crop_map(x.shape[-2:], pad, top, left, mode))


@AUGMENTS.register("crop", CropConfig)
def crop(cfg: CropConfig, info: DataInfo) -> Op:
    """Pad by ``padding`` and cut a random window of the original size, per sample."""
    pad = cfg.padding

    def draw(shape: tuple[int, int, int], rng: Rng, device: torch.device) -> Remap:
        n, h, w = shape
        if pad == 0:  # no draws
            return Remap(None, None)
        off = torch.randint(0, 2 * pad + 1, (2, n), device=device, generator=rng.device)
        off = torch.where(chosen(cfg.p, n, rng.device, device), off, pad)  # pad, pad: no shift
        return crop_map((h, w), pad, off[0], off[1], cfg.padding_mode)

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        if pad == 0:
            return x, y
        n, _, h, w = x.shape
        return remap(x, draw((n, h, w), rng, x.device)), y

    from torchvision.transforms import v2

    t = v2.RandomCrop(info.image_size, padding=pad, padding_mode=PAD_MODES[cfg.padding_mode])
    return Op(apply, v2.RandomApply([t], p=cfg.p), draw)


# --- rotate and affine: one matrix per sample ---------------------------------------------------
#: how both paths resample: ``warp`` on the device, torchvision's v2 twins per sample
BILINEAR = "bilinear"


def warp(x: Tensor, theta: Tensor, fill: float) -> Tensor:
    """Resample each sample through its 2x3 matrix (output -> input, normalised coordinates);
    points from outside the image take ``fill``."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def inverse_affine(a: Tensor, scale: Tensor, shear: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """Sampling matrices (N, 2, 3) for the forward maps translate . rotate(a) . shear . scale.

    Angles in radians; translations in normalised units (2 = the image's side).
    """
    cos, sin, tan = torch.cos(a), torch.sin(a), torch.tan(shear)
    # forward linear part M = R(a) @ [[1, tan], [0, 1]] * scale
    m00, m01 = cos * scale, (cos * tan - sin) * scale
    m10, m11 = sin * scale, (sin * tan + cos) * scale
    det = m00 * m11 - m01 * m10
    i00, i01, i10, i11 = m11 / det, -m01 / det, -m10 / det, m00 / det
    b0, b1 = -(i00 * tx + i01 * ty), -(i10 * tx + i11 * ty)
    return torch.stack([i00, i01, b0, i10, i11, b1], dim=1).view(-1, 2, 3)


@dataclass
class RotateConfig:
    p: float = field(default=0.5, metadata=P)
    degrees: float = field(default=15.0, metadata=check(ge=0, le=180))  # angle in ±degrees
    fill: float = field(default=0.0, metadata=check(ge=0, le=1))


@AUGMENTS.register("rotate", RotateConfig)
def rotate(cfg: RotateConfig, info: DataInfo) -> Op:
    """Rotate each chosen sample by an angle drawn uniformly from ±``degrees``."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        n, g, dev = len(x), rng.device, x.device
        mask = chosen(cfg.p, n, g, dev)
        a = uniform(-cfg.degrees, cfg.degrees, n, g, dev).mul_(math.pi / 180)
        zero = torch.zeros(n, device=dev)
        theta = inverse_affine(a, torch.ones(n, device=dev), zero, zero, zero)
        return where(mask, warp(x, theta, cfg.fill), x), y

    from torchvision.transforms import v2

    fill = _uint8_fill(cfg.fill, info.channels)
    t = v2.RandomRotation(cfg.degrees, interpolation=v2.InterpolationMode(BILINEAR), fill=fill)
    return Op(apply, v2.RandomApply([t], p=cfg.p))


@dataclass
class AffineConfig:
    p: float = field(default=0.5, metadata=P)
    degrees: float = field(default=0.0, metadata=check(ge=0, le=180))
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1], metadata=check(gt=0))
    shear: float = field(default=10.0, metadata=check(ge=0, lt=90))  # x shear in ±degrees
    translate: float = field(default=0.1, metadata=check(ge=0, le=1))  # fraction of the side
    fill: float = field(default=0.0, metadata=check(ge=0, le=1))

    def validate(self, prefix: str) -> None:
        if len(self.scale) != 2 or self.scale[0] > self.scale[1]:
            raise UsageError(f"{prefix}.scale={self.scale}: expected [low, high] with low <= high")


@AUGMENTS.register("affine", AffineConfig)
def affine(cfg: AffineConfig, info: DataInfo) -> Op:
    """Per chosen sample: scale, x-shear, rotation and translation, each drawn uniformly."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        n, g, dev = len(x), rng.device, x.device
        mask = chosen(cfg.p, n, g, dev)
        a = uniform(-cfg.degrees, cfg.degrees, n, g, dev).mul_(math.pi / 180)
        s = uniform(cfg.scale[0], cfg.scale[1], n, g, dev)
        sh = uniform(-cfg.shear, cfg.shear, n, g, dev).mul_(math.pi / 180)
        t = uniform(-2 * cfg.translate, 2 * cfg.translate, 2 * n, g, dev)
        theta = inverse_affine(a, s, sh, t[:n], t[n:])
        return where(mask, warp(x, theta, cfg.fill), x), y

    from torchvision.transforms import v2

    t = v2.RandomAffine(
        cfg.degrees,
        translate=(cfg.translate, cfg.translate),
        scale=tuple(cfg.scale),
        shear=(-cfg.shear, cfg.shear),
        interpolation=v2.InterpolationMode(BILINEAR),
        fill=_uint8_fill(cfg.fill, info.channels),
    )
    return Op(apply, v2.RandomApply([t], p=cfg.p))
