"""What every dataset gives the training loop: a description and batches on the device."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from torch import Tensor


@dataclass(frozen=True)
class DataInfo:
    """Shape of the task, from which models are built.

    Images come as uint8 tensors (N, C, H, W) with H == W == image_size; the loop turns them
    into floats in [0, 1], augments them, then normalises them with ``mean``/``std``.
    Sequences come as float tensors (N, seq_len, features).
    """

    name: str
    kind: Literal["image", "sequence"]
    num_classes: int  # 1 for a regression task
    task: Literal["classification", "regression"] = "classification"
    channels: int = 1
    image_size: int = 0
    seq_len: int = 0
    features: int = 0
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.5,))
    sizes: dict[str, int] = field(default_factory=dict)  # samples per split

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as the model sees it."""
        if self.kind == "image":
            return (self.channels, self.image_size, self.image_size)
        return (self.seq_len, self.features)


class DataModule(Protocol):
    """Train/val/test splits that yield ``(x, y)`` batches already on the training device."""

    info: DataInfo

    def num_batches(self, split: str, *, drop_last: bool = False) -> int: ...

    def batches(
        self,
        split: str,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        start: int = 0,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of ``split`` (``train``/``val``/``test``).

        With ``shuffle`` the order is a permutation drawn from ``seed`` alone, so an epoch's
        order can be drawn again after a resume; ``start`` skips that many batches.
        """
        ...


class InMemoryData:
    """Small datasets held whole as tensors on the training device; batches are index views."""

    def __init__(
        self,
        info: DataInfo,
        splits: dict[str, tuple[Tensor, Tensor]],
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.info = info
        self.batch_size = batch_size
        self.device = device
        self.splits = {
            name: (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            for name, (x, y) in splits.items()
        }

    def __len__(self) -> int:
        return sum(len(y) for _, y in self.splits.values())

    def num_batches(self, split: str, *, drop_last: bool = False) -> int:
        n = len(self.splits[split][1])
        if drop_last and n >= self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def batches(
        self,
        split: str,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        start: int = 0,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.splits[split]
        n, bs = len(y), self.batch_size
        count = self.num_batches(split, drop_last=drop_last)
        if shuffle:
            g = torch.Generator().manual_seed(seed)
            order = torch.randperm(n, generator=g).to(self.device, non_blocking=True)
            for i in range(start, count):
                idx = order[i * bs : (i + 1) * bs]
                yield x[idx], y[idx]
        else:
            for i in range(start, count):
                yield x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]
