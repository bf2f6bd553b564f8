"""The default dataset: UCI handwritten digits (1,797 8x8 images) shipped with scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from dlx.data import DATASETS
from dlx.data.base import DataInfo, InMemoryData
from dlx.registry import check


@dataclass
class ImageDataConfig:
    """Keys shared by the image datasets."""

    name: str = "digits"
    root: str = "data"
    download: bool = False
    batch_size: int = field(default=128, metadata=check(ge=1))
    num_classes: int | None = field(default=None, metadata=check(ge=1))
    image_size: int = field(default=32, metadata=check(ge=8, le=512))
    channels: int | None = field(default=None, metadata=check(choices=[1, 3]))
    val_fraction: float = field(default=0.1, metadata=check(ge=0, lt=1))
    test_fraction: float = field(default=0.15, metadata=check(ge=0, lt=1))
    split_seed: int = 0
    num_workers: int = field(default=2, metadata=check(ge=0))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 batch (N, C, H, W) to size x size with antialiased bilinear filtering."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[torch.Tensor, ...]:
    """A seeded permutation of range(n) cut into train / val / test by the given fractions."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = round(n * fractions[0]), round(n * fractions[1])
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


@DATASETS.register("digits", ImageDataConfig)
def digits(cfg: ImageDataConfig, device: torch.device) -> InMemoryData:
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.from_numpy(raw.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(raw.target).long()
    x = resize(x, cfg.image_size)
    train, val, test = split_indices(len(y), (cfg.val_fraction, cfg.test_fraction), cfg.split_seed)
    mean = x[train].float().mean().item() / 255
    std = x[train].float().std().item() / 255
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    info = DataInfo(
        name="digits",
        kind="image",
        num_classes=10,
        channels=1,
        image_size=cfg.image_size,
        mean=(mean,),
        std=(std,),
        sizes={k: len(v[1]) for k, v in splits.items()},
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
