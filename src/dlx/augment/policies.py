"""Learned policies: ``autoaugment`` (Cubuk et al., 2019), ``randaugment`` (Cubuk et al., 2020),
``trivialaugment`` (Müller & Hutter, 2021), with torchvision's op tables and op maths.

torchvision's v2 transforms draw one op and magnitude per call, i.e. per batch. Here each
sample draws its own (sub-policy or op, magnitude bin, sign) from the augmenter's CPU
generator; samples that drew the same op and signed magnitude form a group, and each group
is transformed in one batched torchvision call (``_apply_image_or_video_transform``, the
method its own policies use). A batch of 64 touches at most a few dozen groups, so the cost
grows with the number of distinct draws, not with the batch size. The draws live on the CPU
because the host must know the groups; they never wait on the device.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dlx.augment.base import AUGMENTS, Op, Rng
from dlx.data.base import DataInfo
from dlx.registry import check

P = check(ge=0, le=1)
#: one sample's draw: the ops to apply in turn, each as (torchvision op name, magnitude)
Draw = list[tuple[str, float]]


def magnitude(space: dict, name: str, bins: int, index: int, size: int) -> tuple[float, bool]:
    """The op's magnitude at ``index`` of ``bins`` for size x size images, and if it is signed."""
    fn, signed = space[name]
    values = fn(bins, size, size)
    return (0.0 if values is None else float(values[index])), signed


def apply_draws(x: Tensor, draws: list[Draw], tv: Any) -> Tensor:
    """Apply each sample's ops, step by step; one torchvision call per (op, magnitude) group."""
    out = x.clone()
    steps = max((len(d) for d in draws), default=0)
    for step in range(steps):
        groups: dict[tuple[str, float], list[int]] = defaultdict(list)
        for i, d in enumerate(draws):
            if step < len(d) and d[step][0] != "Identity":
                groups[d[step]].append(i)
        for (name, mag), rows in groups.items():
            idx = torch.tensor(rows).to(x.device, non_blocking=True)
            part = tv._apply_image_or_video_transform(
                out[idx], name, mag, interpolation=tv.interpolation, fill=tv._fill
            )
            out[idx] = part.clamp(0, 1)
    return out


def _sign(signed: bool, g: torch.Generator) -> float:
    return -1.0 if signed and torch.rand((), generator=g) < 0.5 else 1.0


def _op(draw_one: Callable[[torch.Generator], Draw], tv: Any, p: float, sample: Any) -> Op:
    """An Op that draws per sample with ``draw_one`` (given the CPU generator) and applies."""

    def apply(x: Tensor, y: Tensor, rng: Rng) -> tuple[Tensor, Tensor]:
        on = (torch.rand(len(x), generator=rng.cpu) < p).tolist()
        draws = [draw_one(rng.cpu) if o else [] for o in on]
        return apply_draws(x, draws, tv), y

    from torchvision.transforms import v2

    return Op(apply, v2.RandomApply([sample], p=p))


@dataclass
class AutoAugmentConfig:
    p: float = field(default=1.0, metadata=P)
    policy: str = field(default="cifar10", metadata=check(choices=["imagenet", "cifar10", "svhn"]))


@AUGMENTS.register("autoaugment", AutoAugmentConfig)
def autoaugment(cfg: AutoAugmentConfig, info: DataInfo) -> Op:
    """A sub-policy per sample; each of its two ops applied with the policy's probability."""
    from torchvision.transforms import v2

    tv = v2.AutoAugment(v2.AutoAugmentPolicy(cfg.policy))
    policies, space, size = tv._policies, tv._AUGMENTATION_SPACE, info.image_size

    def draw_one(g: torch.Generator) -> Draw:
        sub = policies[int(torch.randint(len(policies), (), generator=g))]
        out: Draw = []
        for name, prob, index in sub:
            if torch.rand((), generator=g) <= prob:
                mag, signed = magnitude(space, name, 10, index or 0, size)
                out.append((name, mag * _sign(signed, g)))
        return out

    return _op(draw_one, tv, cfg.p, tv)


@dataclass
class RandAugmentConfig:
    p: float = field(default=1.0, metadata=P)
    num_ops: int = field(default=2, metadata=check(ge=1, le=10))  # N
    magnitude: int = field(default=9, metadata=check(ge=0))  # M, a bin of num_magnitude_bins
    num_magnitude_bins: int = field(default=31, metadata=check(ge=2))

    def validate(self, prefix: str) -> None:
        from dlx.errors import UsageError

        if self.magnitude >= self.num_magnitude_bins:
            raise UsageError(
                f"{prefix}.magnitude={self.magnitude}: must be below "
                f"num_magnitude_bins={self.num_magnitude_bins}"
            )


@AUGMENTS.register("randaugment", RandAugmentConfig)
def randaugment(cfg: RandAugmentConfig, info: DataInfo) -> Op:
    """``num_ops`` ops per sample, drawn uniformly, all at magnitude ``magnitude``."""
    from torchvision.transforms import v2

    tv = v2.RandAugment(cfg.num_ops, cfg.magnitude, cfg.num_magnitude_bins)
    space, names = tv._AUGMENTATION_SPACE, list(tv._AUGMENTATION_SPACE)
    mags = {n: magnitude(space, n, cfg.num_magnitude_bins, cfg.magnitude, info.image_size)
            for n in names}  # fmt: skip

    def draw_one(g: torch.Generator) -> Draw:
        ops = torch.randint(len(names), (cfg.num_ops,), generator=g).tolist()
        return [(names[i], mags[names[i]][0] * _sign(mags[names[i]][1], g)) for i in ops]

    return _op(draw_one, tv, cfg.p, tv)


@dataclass
class TrivialAugmentConfig:
    p: float = field(default=1.0, metadata=P)
    num_magnitude_bins: int = field(default=31, metadata=check(ge=2))


@AUGMENTS.register("trivialaugment", TrivialAugmentConfig)
def trivialaugment(cfg: TrivialAugmentConfig, info: DataInfo) -> Op:
    """One op per sample at a magnitude bin drawn uniformly (TrivialAugment Wide)."""
    from torchvision.transforms import v2

    tv = v2.TrivialAugmentWide(cfg.num_magnitude_bins)
    space, names = tv._AUGMENTATION_SPACE, list(tv._AUGMENTATION_SPACE)
    bins = cfg.num_magnitude_bins

    def draw_one(g: torch.Generator) -> Draw:
        name = names[int(torch.randint(len(names), (), generator=g))]
        index = int(torch.randint(bins, (), generator=g))
        mag, signed = magnitude(space, name, bins, index, info.image_size)
        return [(name, mag * _sign(signed, g))]

    return _op(draw_one, tv, cfg.p, tv)
