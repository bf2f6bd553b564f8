"""Random images of any shape: for benchmarks and smoke tests of a model at a given size
(e.g. CIFAR-shaped 3x32x32 without the CIFAR files). Labels are random, so there is nothing
to learn: accuracy stays at chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dlx.data import DATASETS
from dlx.data.base import DataInfo, InMemoryData, ReadingConfig
from dlx.registry import check


@dataclass
class SyntheticConfig(ReadingConfig):
    name: str = "synthetic"
    batch_size: int = field(default=128, metadata=check(ge=1))
    num_classes: int = field(default=10, metadata=check(ge=2))
    image_size: int = field(default=32, metadata=check(ge=8, le=512))
    channels: int = field(default=3, metadata=check(choices=[1, 3]))
    num_train: int = field(default=10000, metadata=check(ge=1))
    num_val: int = field(default=1000, metadata=check(ge=1))
    num_test: int = field(default=1000, metadata=check(ge=1))
    split_seed: int = field(default=0, metadata=check(ge=0))


@DATASETS.register("synthetic", SyntheticConfig)
def synthetic(cfg: SyntheticConfig, device: torch.device) -> InMemoryData:
    """Uniform uint8 images and uniform labels, generated on the training device."""
    g = torch.Generator().manual_seed(cfg.split_seed)
    shape = (cfg.channels, cfg.image_size, cfg.image_size)
    sizes = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    splits = {
        split: (
            torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g),
            torch.randint(0, cfg.num_classes, (n,), generator=g),
        )
        for split, n in sizes.items()
    }
    info = DataInfo(
        name="synthetic",
        kind="image",
        num_classes=cfg.num_classes,
        channels=cfg.channels,
        image_size=cfg.image_size,
        mean=(0.5,) * cfg.channels,
        std=(0.289,) * cfg.channels,  # uniform on [0, 1]
        sizes=sizes,
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
