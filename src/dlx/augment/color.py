"""Colour options: ``color`` (brightness, contrast, saturation, hue), ``noise``, ``blur``.

Each sample draws its own factors, broadcast over its pixels. ``color`` applies brightness,
contrast, saturation, hue in that fixed order (torchvision's ColorJitter shuffles it per
call); saturation and hue need colour, so on 1-channel data only brightness and contrast act.
Results are clamped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.augment.base import AUGMENTS, Op, Rng, chosen, uniform, where
from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.registry import check

P = check(ge=0, le=1)
GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def gray(x: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of an RGB or 1-channel batch."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """factor * a + (1 - factor) * b, clamped, with one factor per sample."""
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0, 1)


@dataclass
class ColorConfig:
    p: float = field(default=0.8, metadata=P)
    brightness: float = field(default=0.4, metadata=check(ge=0, le=1))  # factor in 1 ± b
    contrast: float = field(default=0.4, metadata=check(ge=0, le=1))
    saturation: float = field(default=0.4, metadata=check(ge=0, le=1))
    hue: float = field(default=0.1, metadata=check(ge=0, le=0.5))  # shift in ± turns


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate each sample's hue by ``shift`` turns (HSV, torchvision's conversions)."""
    from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

    hsv = _rgb_to_hsv(x)
    h = (hsv[:, :1] + shift.view(-1, 1, 1, 1)).remainder_(1.0)
    return _hsv_to_rgb(torch.cat([h, hsv[:, 1:]], 1))


@AUGMENTS.register("color", ColorConfig)
def color(cfg: ColorConfig, info: DataInfo) -> Op:
    """Colour jitter with per-sample factors."""
    rgb = info.channels == 3

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        n, g, dev = len(x), rng.device, x.device
        mask = chosen(cfg.p, n, g, dev)
        b, c, s = cfg.brightness, cfg.contrast, cfg.saturation
        f = uniform(0, 1, 4 * n, g, dev).view(4, n)
        out = x
        if b:
            out = _blend(out, torch.zeros_like(out), 1 - b + 2 * b * f[0])
        if c:
            mean = gray(out).mean((1, 2, 3), keepdim=True)
            out = _blend(out, mean.expand_as(out), 1 - c + 2 * c * f[1])
        if rgb and s:
            out = _blend(out, gray(out).expand_as(out), 1 - s + 2 * s * f[2])
        if rgb and cfg.hue:
            out = adjust_hue(out, cfg.hue * (2 * f[3] - 1))
        return where(mask, out, x), y

    from torchvision.transforms import v2

    t = v2.ColorJitter(
        cfg.brightness, cfg.contrast, cfg.saturation if rgb else 0, cfg.hue if rgb else 0
    )
    return Op(apply, v2.RandomApply([t], p=cfg.p))


@dataclass
class NoiseConfig:
    p: float = field(default=0.5, metadata=P)
    std: float = field(default=0.05, metadata=check(ge=0, le=1))  # of the [0, 1] range


@AUGMENTS.register("noise", NoiseConfig)
def noise(cfg: NoiseConfig, info: DataInfo) -> Op:
    """Add N(0, std^2) noise to every pixel of each chosen sample, then clamp to [0, 1]."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        mask = chosen(cfg.p, len(x), rng.device, x.device)
        z = torch.randn(x.shape, device=x.device, generator=rng.device, dtype=x.dtype)
        return where(mask, (x + cfg.std * z).clamp_(0, 1), x), y

    from torchvision.transforms import v2

    t = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.GaussianNoise(sigma=cfg.std),
            v2.ToDtype(torch.uint8, scale=True),
        ]
    )
    return Op(apply, v2.RandomApply([t], p=cfg.p))


@dataclass
class BlurConfig:
    p: float = field(default=0.5, metadata=P)
    kernel_size: int = field(default=3, metadata=check(ge=3))
    sigma: list[float] = field(default_factory=lambda: [0.1, 1.5], metadata=check(gt=0))

    def validate(self, prefix: str) -> None:
        if self.kernel_size % 2 == 0:
            raise UsageError(f"{prefix}.kernel_size={self.kernel_size}: must be odd")
        if len(self.sigma) != 2 or self.sigma[0] > self.sigma[1]:
            raise UsageError(f"{prefix}.sigma={self.sigma}: expected [low, high] with low <= high")


def gaussian_kernels(sigma: Tensor, size: int) -> Tensor:
    """(N, size) normalised 1-D Gaussian kernels, one per sigma."""
    r = torch.arange(size, device=sigma.device, dtype=sigma.dtype) - size // 2
    k = torch.exp(-0.5 * (r[None] / sigma[:, None]) ** 2)
    return k / k.sum(1, keepdim=True)


def blur_batch(x: Tensor, sigma: Tensor, size: int) -> Tensor:
    """Separable Gaussian blur with one sigma per sample (grouped convolutions, reflect pad)."""
    n, c, h, w = x.shape
    k = gaussian_kernels(sigma, size).repeat_interleave(c, 0)  # (N*C, size)
    pad = size // 2
    z = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    z = F.conv2d(z, k.view(n * c, 1, 1, size), groups=n * c)
    z = F.conv2d(z, k.view(n * c, 1, size, 1), groups=n * c)
    return z.view(n, c, h, w)


@AUGMENTS.register("blur", BlurConfig)
def blur(cfg: BlurConfig, info: DataInfo) -> Op:
    """Gaussian blur of each chosen sample, sigma drawn uniformly from ``sigma``."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        n, g, dev = len(x), rng.device, x.device
        mask = chosen(cfg.p, n, g, dev)
        sigma = uniform(cfg.sigma[0], cfg.sigma[1], n, g, dev)
        return where(mask, blur_batch(x, sigma, cfg.kernel_size), x), y

    from torchvision.transforms import v2

    t = v2.GaussianBlur(cfg.kernel_size, sigma=tuple(cfg.sigma))
    return Op(apply, v2.RandomApply([t], p=cfg.p))
