"""Synthetic sequence tasks, generated from a seed and held in memory.

The adding problem (Hochreiter & Schmidhuber, 1997; in the form of Le et al., 2015): each
sample is ``seq_len`` steps of two features, a value drawn from U[0, 1] and a marker that is 1
at exactly two steps, one in each half of the sequence; the target is the sum of the two
marked values. Predicting 1 (the mean) gives an MSE of about 0.167, the baseline to beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dlx.data import DATASETS
from dlx.data.base import DataInfo, InMemoryData
from dlx.registry import check


@dataclass
class AddingConfig:
    name: str = "adding"
    batch_size: int = field(default=128, metadata=check(ge=1))
    seq_len: int = field(default=50, metadata=check(ge=2))
    num_train: int = field(default=10000, metadata=check(ge=1))
    num_val: int = field(default=1000, metadata=check(ge=0))
    num_test: int = field(default=1000, metadata=check(ge=0))
    split_seed: int = field(default=0, metadata=check(ge=0))


def adding_problem(n: int, seq_len: int, seed: int | list[int]) -> tuple[Tensor, Tensor]:
    """``n`` samples: x float32 (n, seq_len, 2) of (value, marker), y float32 (n,)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = rng.random((n, seq_len), dtype=np.float32)
    half = seq_len // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, seq_len, size=n)
    markers = np.zeros((n, seq_len), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1
    markers[rows, second] = 1
    x = torch.from_numpy(np.stack([values, markers], axis=-1))
    y = torch.from_numpy(values[rows, first] + values[rows, second])
    return x, y


@DATASETS.register("adding", AddingConfig)
def adding(cfg: AddingConfig, device: torch.device) -> InMemoryData:
    """Train/val/test sets of the adding problem, each from its own stream of ``split_seed``."""
    sizes = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    splits = {
        split: adding_problem(n, cfg.seq_len, [cfg.split_seed, i])
        for i, (split, n) in enumerate(sizes.items())
    }
    info = DataInfo(
        name="adding",
        kind="sequence",
        task="regression",
        num_classes=1,
        seq_len=cfg.seq_len,
        features=2,
        sizes=sizes,
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
