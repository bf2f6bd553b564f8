"""MNIST-1D (Greydanus, 2020, "Scaling down deep learning"): ten 1-D digit templates,
padded, dilated, scaled, translated, sheared and noised into sequences of 40 values, so that
a model's spatial prior shows at MNIST cost: a linear model scores ~32%, an MLP ~68%, a CNN
~94%, and shuffling the positions by one fixed permutation drops the CNN and the GRU but not
the MLP (the paper's table 1).

Generated offline by the ``mnist1d`` package's own generator with its default arguments
(5,000 samples, seed 42: 4,000 train / 1,000 test), never its download helper. The val split
is a seeded ``val_fraction`` of the training part (3,600 / 400 / 1,000 by default). A sample
is a 1-channel sequence, (40, 1) as the recurrent models read it; ``data.permute=true`` reads
its 40 positions in a fixed order drawn from ``permute_seed`` (null: ``split_seed``):
the paper's "shuffled" variant.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from dlx.data import DATASETS
from dlx.data.base import DataInfo, InMemoryData, split_indices
from dlx.registry import check


@functools.lru_cache(maxsize=1)
def generate() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D as ``mnist1d.data.make_dataset`` builds it from ``get_dataset_args()``:
    x (4000, 40), y (4000,), x_test (1000, 40), y_test (1000,). About a second; the generator
    seeds the global ``random``/``numpy`` streams, whose states are put back afterwards."""
    from mnist1d.data import get_dataset_args, make_dataset

    states = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return d["x"], d["y"], d["x_test"], d["y_test"]


@dataclass
class Mnist1dConfig:
    name: str = "mnist1d"
    batch_size: int = field(default=100, metadata=check(ge=1))
    val_fraction: float = field(default=0.1, metadata=check(ge=0, lt=1))  # of the 4,000
    # a seeded subset of the training split (val and test stay whole): small-data studies
    train_fraction: float = field(default=1.0, metadata=check(gt=0, le=1))
    split_seed: int = field(default=0, metadata=check(ge=0))
    permute: bool = False  # the 40 positions in a fixed order: the paper's "shuffled" variant
    permute_seed: int | None = field(default=None, metadata=check(ge=0))  # null: split_seed


def as_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 40) float64 and (N,) labels -> float32 (N, 40, 1) and int64 (N,)."""
    return torch.tensor(x, dtype=torch.float32).unsqueeze(-1), torch.tensor(y, dtype=torch.long)


@DATASETS.register("mnist1d", Mnist1dConfig)
def mnist1d(cfg: Mnist1dConfig, device: torch.device) -> InMemoryData:
    """MNIST-1D's train part split into train/val by ``split_seed``; test is its own."""
    x, y, x_test, y_test = generate()
    x, y = as_tensors(x, y)
    train, val, _ = split_indices(len(y), (cfg.val_fraction, 0.0), cfg.split_seed)
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val])}
    splits["test"] = as_tensors(x_test, y_test)
    seed = cfg.permute_seed if cfg.permute_seed is not None else cfg.split_seed
    info = DataInfo(
        name="mnist1d",
        kind="sequence",
        num_classes=10,
        seq_len=x.shape[1],
        features=1,
        sizes={k: len(v[1]) for k, v in splits.items()},
        permute_seed=seed if cfg.permute else None,
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
