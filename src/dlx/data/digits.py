"""The default dataset: UCI handwritten digits (1,797 8x8 images) shipped with scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dlx.data import DATASETS
from dlx.data.base import (
    DataInfo,
    InMemoryData,
    SplitImageDataConfig,
    channel_stats,
    check_facts,
    resize,
    split_indices,
)
from dlx.registry import check


@dataclass
class DigitsConfig(SplitImageDataConfig):
    image_size: int | None = field(default=32, metadata=check(ge=8, le=512))


@DATASETS.register("digits", DigitsConfig)
def digits(cfg: DigitsConfig, device: torch.device) -> InMemoryData:
    """The 8x8 digits as uint8 (N, 1, S, S) images, split by ``split_seed``."""
    from sklearn.datasets import load_digits

    check_facts(cfg, "digits", num_classes=10, channels=1)
    raw = load_digits()
    x = torch.from_numpy(raw.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(raw.target).long()
    size = x.shape[-1] if cfg.image_size is None else cfg.image_size
    x = resize(x, size)
    train, val, test = split_indices(len(y), (cfg.val_fraction, cfg.test_fraction), cfg.split_seed)
    mean, std = channel_stats(x[train])
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    info = DataInfo(
        name="digits",
        kind="image",
        num_classes=10,
        channels=1,
        image_size=size,
        mean=mean,
        std=std,
        sizes={k: len(v[1]) for k, v in splits.items()},
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
