"""Augmentation: the ``augment`` config group, several options at once, applied to whole
batches on the training device with a draw per sample.

Options are applied in a fixed order (``ORDER``), whatever order the list names them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dlx.data.base import DataInfo
from dlx.registry import Registry, check

AUGMENTS: Registry = Registry("augment")


@dataclass
class FlipConfig:
    p: float = field(default=0.5, metadata=check(ge=0, le=1))
    horizontal: bool = True
    vertical: bool = False


@AUGMENTS.register("flip", FlipConfig)
def flip(cfg: FlipConfig, info: DataInfo):
    def apply(x: Tensor, y: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        for dim, on in ((-1, cfg.horizontal), (-2, cfg.vertical)):
            if on:
                mask = torch.rand(x.shape[0], device=x.device, generator=g) < cfg.p
                x = torch.where(mask[:, None, None, None], x.flip(dim), x)
        return x, y

    return apply


ORDER = ["flip"]


class Augmenter:
    """The chosen ops in ``ORDER``, sharing one seeded generator on the training device."""

    def __init__(self, ops: list[tuple[str, Any]], device: torch.device, seed: int) -> None:
        self.ops = ops
        self.generator = torch.Generator(device=device).manual_seed(seed)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.ops]

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        for _, op in self.ops:
            x, y = op(x, y, self.generator)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def build_augment(node: Any, info: DataInfo, device: torch.device, seed: int) -> Augmenter | None:
    """The augmentation pipeline ``cfg.augment`` describes, or None when nothing is chosen."""
    names = list(node.keys()) if node else []
    for n in names:
        AUGMENTS.get(n)  # unknown names fail here, with the allowed list
    ops = []
    for n in sorted(names, key=ORDER.index):
        cfg = AUGMENTS.parse(node[n], n, prefix=f"augment.{n}")
        ops.append((n, AUGMENTS.get(n).builder(cfg, info)))
    return Augmenter(ops, device, seed) if ops else None
